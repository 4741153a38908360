# Heap profile of the handler through a benchmark scenario: `make heap` runs one scenario of
# bench/ with the handler under heaptrack and prints where the heap stood at its peak, by the
# handler's own function that asked for it. Included by the top-level Makefile. A developer's
# tool, not a benchmark: the figures it prints are heaptrack's, of a glibc build (the allocator
# differs from the musl binary's; what the code allocates does not).
#
#   make heap                      scenario scale (1,000 pods)
#   make heap HEAP_ONLY=drain      any other scenario of stnh-bench (--only)
#   make heap HEAP_TOP=25          more rows
#
# Needs heaptrack (apt-get install heaptrack, done here when missing) and python3. The handler
# is built for x86_64-unknown-linux-gnu with debug info into target/heap/ and started through an
# exec wrapper, so the benchmark's process is the handler itself (heaptrack's own launcher
# forks, and the benchmark would wait on the fork's stderr). Output: target/heap/.

HEAP_ONLY ?= scale
HEAP_TOP  ?= 15
HEAP_DIR  := $(abspath target/heap)
HEAP_BIN  := $(HEAP_DIR)/x86_64-unknown-linux-gnu/release/spot-termination-notice-handler

.PHONY: heap

heap: bench-tool
	@command -v heaptrack >/dev/null || (apt-get update -qq && apt-get install -y -qq heaptrack)
	CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \
	  $(CARGO) build --release --locked --target x86_64-unknown-linux-gnu --target-dir $(HEAP_DIR) \
	  -p spot-termination-notice-handler
	HEAP_DIR='$(HEAP_DIR)' HEAP_BIN='$(HEAP_BIN)' HEAP_ONLY='$(HEAP_ONLY)' HEAP_TOP='$(HEAP_TOP)' \
	  BENCH_TOOL='$(BENCH_TOOL)' sh mk/heap.sh
