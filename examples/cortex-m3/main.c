/* A firmware that tells the world which build it is.
 *
 * At boot it prints a few log lines and then the stamp report,
 *     @stamp {"edit":12,"git":"<40 hex>","dirty":false,"build_id":"<hex>"}
 * and it prints the report again whenever it receives the line "?stamp". That is the
 * whole device side of `stamp verify`: the report comes from stamp.c, which `stamp header`
 * generates before every build (see the Makefile).
 *
 * The UART code is for the LM3S6965's UART0, an ARM PL011, polled (no interrupts); on
 * another chip replace uart_init/uart_putc/uart_poll and keep the rest.
 */
#include <stddef.h>
#include <stdint.h>

#include "stamp.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* System control: clock gating (LM3S6965 datasheet, "System Control"). */
#define SYSCTL_RCGC1 REG(0x400FE104u)
#define SYSCTL_RCGC2 REG(0x400FE108u)
#define RCGC1_UART0 (1u << 0)
#define RCGC2_GPIOA (1u << 0)

/* GPIO port A: UART0 RX/TX are the alternate functions of PA0/PA1. */
#define GPIOA_AFSEL REG(0x40004420u)
#define GPIOA_DEN REG(0x4000451Cu)
#define PA0_PA1 ((1u << 0) | (1u << 1))

/* UART0 (PL011). */
#define UART0_DR REG(0x4000C000u)   /* data */
#define UART0_FR REG(0x4000C018u)   /* flags */
#define UART0_IBRD REG(0x4000C024u) /* integer baud divisor */
#define UART0_FBRD REG(0x4000C028u) /* fractional baud divisor, in 1/64 */
#define UART0_LCRH REG(0x4000C02Cu) /* line control */
#define UART0_CTL REG(0x4000C030u)  /* control */
#define FR_RXFE (1u << 4)           /* receive FIFO empty */
#define FR_TXFF (1u << 5)           /* transmit FIFO full */
#define LCRH_FEN (1u << 4)          /* enable the FIFOs */
#define LCRH_WLEN_8 (3u << 5)       /* 8 data bits, no parity, 1 stop bit */
#define CTL_UARTEN (1u << 0)
#define CTL_TXE (1u << 8)
#define CTL_RXE (1u << 9)

/* After reset the LM3S6965 runs from its 12 MHz internal oscillator; QEMU ignores the
 * baud rate, a real board needs it right. */
#define CPU_HZ 12000000u
#define BAUD 115200u
/* The PL011 divides by 16 * (IBRD + FBRD / 64): compute 64 * CPU_HZ / (16 * BAUD),
 * rounded, and split it into the integer and the 1/64 parts. */
#define BAUD_DIVISOR_X64 ((4u * CPU_HZ + BAUD / 2u) / BAUD)

/* stamp.h: "160 bytes always suffice" for the report; a little more for a long build-id. */
#define REPORT_SIZE 200
/* The longest command line this firmware understands, plus room to detect longer ones. */
#define COMMAND_SIZE 16

static const char QUERY[] = "?stamp";

static void uart_init(void)
{
    SYSCTL_RCGC1 |= RCGC1_UART0;
    SYSCTL_RCGC2 |= RCGC2_GPIOA;
    GPIOA_AFSEL |= PA0_PA1;
    GPIOA_DEN |= PA0_PA1;

    UART0_CTL = 0; /* the PL011 must be disabled while it is configured */
    UART0_IBRD = BAUD_DIVISOR_X64 / 64u;
    UART0_FBRD = BAUD_DIVISOR_X64 % 64u;
    UART0_LCRH = LCRH_WLEN_8 | LCRH_FEN;
    UART0_CTL = CTL_UARTEN | CTL_TXE | CTL_RXE;
}

static void uart_putc(char c)
{
    while (UART0_FR & FR_TXFF) {
    }
    UART0_DR = (uint8_t)c;
}

static void uart_puts(const char *s)
{
    while (*s) {
        uart_putc(*s++);
    }
}

/* The next received character, or -1 when none is waiting. */
static int uart_poll(void)
{
    if (UART0_FR & FR_RXFE) {
        return -1;
    }
    return (int)(UART0_DR & 0xFFu);
}

/* The line protocol wants one line ending in "\n"; "\r\n" suits terminals too. */
static void print_report(void)
{
    char report[REPORT_SIZE];
    if (stamp_report(report, sizeof report) > 0) {
        uart_puts(report);
        uart_puts("\r\n");
    }
}

static int line_equals(const char *line, size_t len, const char *text)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (text[i] != line[i]) {
            return 0;
        }
    }
    return text[len] == '\0';
}

int main(void)
{
    char line[COMMAND_SIZE];
    size_t len = 0;
    int overflow = 0;

    uart_init();
    uart_puts("\r\nboot: stamp example for the LM3S6965 (Cortex-M3)\r\n");
    uart_puts("boot: uart0 at 115200 8N1, polled\r\n");
    print_report();
    uart_puts("ready: send ?stamp for the report again\r\n");

    for (;;) {
        int c = uart_poll();
        if (c < 0 || c == '\r') {
            continue;
        }
        if (c == '\n') {
            if (!overflow && line_equals(line, len, QUERY)) {
                print_report();
            }
            len = 0;
            overflow = 0;
        } else if (len < sizeof line) {
            line[len++] = (char)c;
        } else {
            overflow = 1; /* too long to be a command: ignore the whole line */
        }
    }
}
