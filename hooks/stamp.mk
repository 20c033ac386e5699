# stamp.mk - include from a firmware Makefile to stamp every build.
#
#   include path/to/stamp/hooks/stamp.mk
#   CFLAGS += $(STAMP_CFLAGS)
#   SRCS   += $(STAMP_C)
#   $(OBJS): | $(STAMP_H)        # or list $(STAMP_H) as a prerequisite of what includes it
#
# `stamp header` runs once per make invocation (also under make -j), before anything that
# depends on the generated files, and rewrites them only when their content changes: a
# second `make` with nothing edited recompiles nothing. Override any variable below on
# the command line or before the include. Needs GNU make 4.3+ (grouped targets `&:`).

STAMP            ?= stamp
STAMP_DIR        ?= build/stamp
STAMP_FLAGS      ?=
STAMP_C          := $(STAMP_DIR)/stamp.c
STAMP_H          := $(STAMP_DIR)/stamp.h
STAMP_CFLAGS     := -I$(STAMP_DIR)

# Post-build: `make stamp-manifest`, or list $(STAMP_MANIFEST) among your targets.
# Set these before the include.
STAMP_ELF        ?=
STAMP_BIN        ?=
STAMP_MANIFEST   ?= $(if $(STAMP_ELF),$(basename $(STAMP_ELF)).stamp.json,)

# Flashing: `make flash-verify DEVICE=bench` (a name from stamp.toml, or a URL such as
# serial:/dev/ttyACM0 or particle:my_photon).
DEVICE           ?=
STAMP_FLASH_FILE ?= $(if $(STAMP_BIN),$(STAMP_BIN),$(STAMP_ELF))
STAMP_RETRIES    ?= 2
STAMP_FLASH_FLAGS ?=

.PHONY: stamp-header stamp-manifest flash-verify stamp-FORCE

# Including this file must not change the including Makefile's default goal.
_stamp_default_goal := $(.DEFAULT_GOAL)

# The recipe always runs (FORCE); make then re-reads the files' mtimes, so targets that
# depend on them rebuild only when stamp actually rewrote them (as the kernel's filechk).
$(STAMP_C) $(STAMP_H) &: stamp-FORCE
	@$(STAMP) header --output-dir $(STAMP_DIR) $(STAMP_FLAGS)

stamp-header: $(STAMP_C) $(STAMP_H)

stamp-FORCE:

# The manifest is a file target: it is remade only when the image changed, so a no-op
# `make` adds nothing to the build history. Set STAMP_ELF (and STAMP_BIN) before the
# include for this rule to exist.
ifneq ($(STAMP_ELF),)
$(STAMP_MANIFEST): $(STAMP_ELF) $(STAMP_BIN)
	$(STAMP) manifest $(STAMP_ELF) $(if $(STAMP_BIN),--bin $(STAMP_BIN)) -o $@

stamp-manifest: $(STAMP_MANIFEST)
else
stamp-manifest:
	@echo "stamp.mk: set STAMP_ELF (and STAMP_BIN) before including stamp.mk" >&2; exit 2
endif

flash-verify: stamp-manifest
	@test -n "$(DEVICE)" || { echo "stamp.mk: usage: make flash-verify DEVICE=name-or-url" >&2; exit 2; }
	@$(STAMP) flash --device $(DEVICE) --retries $(STAMP_RETRIES) --manifest $(STAMP_MANIFEST) \
	    $(STAMP_FLASH_FLAGS) $(STAMP_FLASH_FILE)

.DEFAULT_GOAL := $(_stamp_default_goal)
