# stamp.mk - include from a firmware Makefile to stamp every build (GNU make 4.3+).
#
#   STAMP_ELF := build/app.elf              # optional, before the include: the manifest rule
#   STAMP_BIN := build/app.bin
#   STAMP     ?= stamp
#   include $(shell $(STAMP) hooks path)/stamp.mk
#   CFLAGS += $(STAMP_CFLAGS)
#   SRCS   += $(STAMP_C)
#   $(call stamp_needed_by,$(OBJS))         # compile these after `stamp header`
#
# `stamp header` runs once per make invocation (also under make -j), before anything that
# depends on the generated files, and rewrites them only when their content changes: a
# second `make` with nothing edited recompiles nothing. Nothing here, and no line above,
# changes the including Makefile's default goal, wherever it stands (`all:` may come
# later). Override any variable below on the command line or before the include.
#
# `stamp` not on PATH (e.g. installed in a virtual environment)? Set STAMP:
#   make STAMP=/path/to/venv/bin/stamp      or   STAMP := .venv/bin/stamp  before the include

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

# Including this file must not change the including Makefile's default goal.
_stamp_default_goal := $(.DEFAULT_GOAL)

# $(call stamp_needed_by,OBJECTS): OBJECTS wait for `stamp header` and recompile when the
# header changes. A function rather than a rule line (`$(OBJS): $(STAMP_H)`) because a rule
# line before `all:` would become the default goal; this one puts the goal back.
# OBJECTS is expanded where the call stands: define OBJS above it, or no object waits and a
# clean `make -j` fails with "stamp.h: No such file or directory". An empty list says so.
stamp_needed_by = $(if $(strip $(1)),$(eval $(call _stamp_needed_by,$(1))),$(warning \
stamp.mk: stamp_needed_by got no objects: call it after OBJS (the objects) is defined))
define _stamp_needed_by
_stamp_goal_before := $$(.DEFAULT_GOAL)
$(1): $(STAMP_H)
.DEFAULT_GOAL := $$(_stamp_goal_before)
endef

_stamp_command = $(firstword $(STAMP))
_stamp_missing = stamp.mk: cannot run '$(_stamp_command)': install stamp (pip install \
stamp-firmware) or set STAMP to its path, e.g. make STAMP=$$HOME/.venv/bin/stamp

.PHONY: stamp-header stamp-manifest flash-verify stamp-FORCE stamp-device-check

# The recipe always runs (FORCE); make then re-reads the files' mtimes, so targets that
# depend on them rebuild only when stamp actually rewrote them (as the kernel's filechk).
$(STAMP_C) $(STAMP_H) &: stamp-FORCE
	@command -v $(_stamp_command) >/dev/null 2>&1 || { echo "$(_stamp_missing)" >&2; exit 127; }; \
	$(STAMP) header --output-dir $(STAMP_DIR) $(STAMP_FLAGS)

stamp-header: $(STAMP_C) $(STAMP_H)

stamp-FORCE:

# The manifest is a file target: it is remade only when the image changed, so a no-op
# `make` adds nothing to the build history. Set STAMP_ELF (and STAMP_BIN) before the
# include for this rule to exist. $(strip): a comment after `STAMP_ELF := build/app.elf`
# (as in the README) leaves the spaces before it in the value, and in the echoed command.
ifneq ($(STAMP_ELF),)
$(STAMP_MANIFEST): $(STAMP_ELF) $(STAMP_BIN)
	$(STAMP) manifest $(strip $(STAMP_ELF) $(if $(STAMP_BIN),--bin $(STAMP_BIN))) -o $@

stamp-manifest: $(STAMP_MANIFEST)
else
stamp-manifest:
	@echo "stamp.mk: set STAMP_ELF (and STAMP_BIN) before including stamp.mk" >&2; exit 2
endif

# `make flash-verify` without DEVICE says so before building anything: the generated
# files (which every object waits for) wait for this check.
ifneq ($(filter flash-verify,$(MAKECMDGOALS)),)
$(STAMP_C) $(STAMP_H) $(STAMP_MANIFEST): | stamp-device-check
endif
stamp-device-check:
	@test -n "$(DEVICE)" || { echo "stamp.mk: usage: make flash-verify DEVICE=name-or-url" \
	    "(a [devices.NAME] from stamp.toml, serial:/dev/ttyACM0, particle:my_photon)" >&2; exit 2; }

flash-verify: stamp-device-check stamp-manifest
	@$(STAMP) flash --device $(DEVICE) --retries $(STAMP_RETRIES) --manifest $(STAMP_MANIFEST) \
	    $(STAMP_FLASH_FLAGS) $(STAMP_FLASH_FILE)

.DEFAULT_GOAL := $(_stamp_default_goal)
