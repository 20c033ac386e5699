# stamp.cmake - stamp every build of a CMake firmware project.
#
#   find_program(STAMP_EXECUTABLE stamp REQUIRED)
#   execute_process(COMMAND ${STAMP_EXECUTABLE} hooks path OUTPUT_VARIABLE STAMP_HOOKS
#                   OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
#   include(${STAMP_HOOKS}/stamp.cmake)
#   add_executable(firmware.elf main.c)
#   stamp_target(firmware.elf)                  # [BIN file.bin] [OUTPUT_DIR dir]
#
# stamp_target(TARGET) wires the three parts of the README's Make integration into TARGET:
# `stamp header` before TARGET compiles (rewriting the generated files only when their
# content changes, so a no-op build compiles nothing), the generated directory on its
# include path, the generated stamp.c among its sources, and `stamp manifest` after it
# links (with --bin BIN when given; the .bin must be made by then, e.g. by an earlier
# POST_BUILD command). Set STAMP_EXECUTABLE when `stamp` is not on PATH.

cmake_minimum_required(VERSION 3.20)

find_program(STAMP_EXECUTABLE stamp DOC "the stamp command (pip install stamp-firmware)")

function(stamp_target target)
  cmake_parse_arguments(PARSE_ARGV 1 STAMP "" "OUTPUT_DIR;BIN" "")
  if(NOT STAMP_EXECUTABLE)
    message(FATAL_ERROR
      "stamp.cmake: cannot find the stamp command: install it (pip install stamp-firmware) "
      "or configure with -DSTAMP_EXECUTABLE=/path/to/venv/bin/stamp")
  endif()
  if(NOT STAMP_OUTPUT_DIR)
    set(STAMP_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/stamp")
  endif()
  set(generated "${STAMP_OUTPUT_DIR}/stamp.c" "${STAMP_OUTPUT_DIR}/stamp.h")
  add_custom_target(stamp_header_${target}
    COMMAND "${STAMP_EXECUTABLE}" header --output-dir "${STAMP_OUTPUT_DIR}"
    BYPRODUCTS ${generated}
    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
    COMMENT ""
    VERBATIM)
  target_sources(${target} PRIVATE "${STAMP_OUTPUT_DIR}/stamp.c")
  target_include_directories(${target} PRIVATE "${STAMP_OUTPUT_DIR}")
  add_dependencies(${target} stamp_header_${target})
  set(manifest_args manifest "$<TARGET_FILE:${target}>")
  if(STAMP_BIN)
    list(APPEND manifest_args --bin "${STAMP_BIN}")
  endif()
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND "${STAMP_EXECUTABLE}" ${manifest_args}
    WORKING_DIRECTORY "${CMAKE_SOURCE_DIR}"
    VERBATIM)
endfunction()
