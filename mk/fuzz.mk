# Coverage-guided fuzzing: `make fuzz` builds every target of fuzz/ (cargo-fuzz, libFuzzer, on
# the nightly toolchain) and runs them one after the other, then writes FUZZING.md. Included by
# the top-level Makefile (`-include mk/*.mk`).
#
#   make fuzz                                  every target for FUZZ_SECONDS (60) each, rewrites FUZZING.md
#   make fuzz FUZZ_SECONDS=20                  shorter (CI); FUZZ_RUNS=10000000 stops a target at that many
#                                              executions instead (FUZZ_SECONDS stays the cap)
#   make fuzz FUZZ_TARGETS="http_response json_check"   some targets only
#   make fuzz FUZZ_REPORT=target/fuzz/FUZZING.md        write the report elsewhere (CI: FUZZING.md untouched)
#   make fuzz FUZZ_TARGETS=none                rewrite the report from the last run of each target
#   make fuzz-list                             the targets
#
# Each run starts from the committed seeds (fuzz/corpus/<target>/, read only) plus what earlier
# runs found (target/fuzz/corpus/<target>/, not committed). A crash or a hang (-timeout) stops
# that target, leaves its input in target/fuzz/artifacts/<target>/ and fails `make fuzz`.
# Installs cargo-fuzz (cargo install --locked) and the nightly toolchain (rustup) when missing.

FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_TARGETS ?=
FUZZ_REPORT  ?= FUZZING.md
FUZZ_TIMEOUT ?= 10
FUZZ_RSS_MB  ?= 1024

.PHONY: fuzz fuzz-build fuzz-list

fuzz-build:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && cargo +nightly fuzz build --sanitizer none --debug-assertions

fuzz-list:
	@ls fuzz/fuzz_targets | sed 's/\.rs$$//'

fuzz: fuzz-build
	FUZZ_SECONDS='$(FUZZ_SECONDS)' FUZZ_RUNS='$(FUZZ_RUNS)' FUZZ_TARGETS='$(FUZZ_TARGETS)' \
	  FUZZ_REPORT='$(FUZZ_REPORT)' FUZZ_TIMEOUT='$(FUZZ_TIMEOUT)' FUZZ_RSS_MB='$(FUZZ_RSS_MB)' \
	  sh mk/fuzz.sh
