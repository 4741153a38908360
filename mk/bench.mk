# Benchmarks: `make bench` runs every scenario of bench/ against the simulator (and real kubectl drain)
# and writes BENCHMARKS.md. Included by the top-level Makefile (`-include mk/*.mk`), which defines
# KUBE_VERSION, TARGET, BIN, CARGO and `build`.
#
#   make bench                                   all scenarios (~12 min on 2 cores), rewrites BENCHMARKS.md
#   make bench BENCH_ONLY=reaction               one scenario: size, idle, reaction, drain, kubectl, pdb, scale,
#                                                memlimit (1,000 and 5,000 pods in a memory cgroup at the manifests'
#                                                limit: needs root or a delegated cgroup; MEMLIMIT=4Mi tries another),
#                                                tiers (critical pods last), availability (workloads through a reclaim)
#   make bench BENCH_ONLY=mass                   not in the default set (~3 min, the whole machine): MASS_NODES
#                                                (500) handlers, each with its own IMDS, against one API server with
#                                                APF-like throttling, beside MASS_KUBECTL (50) kubectl drains and
#                                                as many handlers; the handlers' API log goes to target/bench/;
#                                                MASS_QUEUE (300) waiting seats, MASS_NICE (0) the clients' niceness
#   make soak                                    mk/soak.mk: SOAK_MINUTES (60) of notices that come and go
#   make bench BENCH_ONLY=drain,kubectl          several (drain and kubectl alternate their runs: same-run ratios)
#   make bench BENCH_TRIALS=10                   fewer reaction trials per signal (default 30)
#   make bench BENCH_FLAGS='--latency 5ms --reps 3'   any other stnh-bench flag (stnh-bench --help)
#
# A partial run (BENCH_ONLY) writes target/bench/BENCHMARKS-<scenarios>.md, not BENCHMARKS.md.
# The drain and pdb scenarios also draw their drain: target/bench/timeline-drain-110.svg, timeline-pdb.svg
# (the simulator's picture, from its own logs; `make timeline` draws the demo's into docs/).
# The handler measured is always the production binary $(BIN) (`make build`); the benchmark driver
# and the simulator are built with the `tools` profile. Needs kubectl for the kubectl scenario and
# perf for the finer CPU figures; podman only to report image sizes.

BENCH_ONLY       ?=
BENCH_TRIALS     ?=
BENCH_FLAGS      ?=
BENCH_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BENCH_TOOL       := $(BENCH_TARGET_DIR)/tools/stnh-bench
BENCH_IMAGE      ?= $(or $(IMAGE),ghcr.io/spot-termination-notice-handler/spot-termination-notice-handler):$(KUBE_VERSION)-$(or $(REVISION),1)

.PHONY: bench bench-tool

bench-tool:
	$(CARGO) build --locked --profile tools -p stnh-bench

bench: build bench-tool
	$(BENCH_TOOL) --bin $(BIN) \
	  --arm64-bin $(BENCH_TARGET_DIR)/aarch64-unknown-linux-musl/release/spot-termination-notice-handler \
	  --image $(BENCH_IMAGE) \
	  $(if $(BENCH_ONLY),--only $(BENCH_ONLY)) \
	  $(if $(BENCH_TRIALS),--trials $(BENCH_TRIALS)) \
	  $(BENCH_FLAGS)
