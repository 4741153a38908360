# Soak: `make soak` runs the production handler against the simulator for SOAK_MINUTES (default 60)
# at POLL_INTERVAL=50ms with /metrics scraped every second and notices that come and go (AWS
# scheduled events announced and cancelled, rebalance recommendations whose TTL passes), and
# reports VmRSS, threads and fds (sampled at the start and every minute: start, end, max and the
# least-squares slope per hour), cycles completed, restarts and error lines. Not in CI.
# Writes target/bench/SOAK.md (the section to paste into BENCHMARKS.md),
# target/bench/BENCHMARKS-soak.md (the same in the usual report frame) and, while it runs,
# target/bench/soak-samples.csv. Included by the top-level Makefile; uses mk/bench.mk's tool.
#
#   make soak                    one hour
#   make soak SOAK_MINUTES=3     a quick check of the harness

SOAK_MINUTES ?= 60

.PHONY: soak

soak: build bench-tool
	SOAK_MINUTES=$(SOAK_MINUTES) $(BENCH_TOOL) --bin $(BIN) --only soak $(BENCH_FLAGS)
