#!/bin/sh
# Prints GNU ld's own default linker script with the unwind tables (.eh_frame, .eh_frame_hdr,
# .gcc_except_table) discarded, except crtbegin/crtend's few bytes, which musl's start-up code
# refers to. The production binary is built with panic = "abort": nothing ever unwinds, and the
# tables are 150+ KB of the 1.8 MB budget (README, "Binary size"). The script is derived from the
# installed ld (`ld --verbose`) at build time, so it always matches the toolchain.
set -eu
ld --verbose | awk '
  /^=======/ { inside = !inside; next }
  !inside { next }
  /^[ \t]*\.eh_frame_hdr[ \t]*:/ || /^[ \t]*\.eh_frame[ \t]*:/ || /^[ \t]*\.gcc_except_table[ \t]*:/ { next }
  /^[ \t]*\.rodata1[ \t]*:/ {
    print
    print "  .eh_frame       : { KEEP (*crtbegin*.o(.eh_frame)) KEEP (*crtend*.o(.eh_frame)) }"
    next
  }
  /^[ \t]*\/DISCARD\/[ \t]*:[ \t]*\{/ {
    sub(/\{/, "{ *(.eh_frame) *(.eh_frame.*) *(.eh_frame_hdr) *(.gcc_except_table .gcc_except_table.*)")
  }
  { print }
'
