/* Cortex-M3 startup: the vector table and the reset handler, without any vendor library.
 *
 * The core loads the stack pointer from the first word of the vector table and jumps to
 * the second. The reset handler gives C its promised environment (initialised .data,
 * zeroed .bss) and calls main(). The symbols come from lm3s6965.ld.
 */
#include <stdint.h>

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

int main(void);

void reset_handler(void);

/* Every fault or interrupt this example does not handle stops here, visibly, in a debugger. */
static void default_handler(void)
{
    for (;;) {
    }
}

void reset_handler(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst = __data_start;
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
    main();
    for (;;) {
    }
}

/* The 16 system entries of the ARMv7-M vector table (ARMv7-M ARM, B1.5.3). This example
 * uses no peripheral interrupts, so the table stops there. */
__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, /* initial stack pointer */
    reset_handler,               /* reset */
    default_handler,             /* NMI */
    default_handler,             /* hard fault */
    default_handler,             /* memory management fault */
    default_handler,             /* bus fault */
    default_handler,             /* usage fault */
    0, 0, 0, 0,                  /* reserved */
    default_handler,             /* SVCall */
    default_handler,             /* debug monitor */
    0,                           /* reserved */
    default_handler,             /* PendSV */
    default_handler,             /* SysTick */
};
