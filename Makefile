# spot-termination-notice-handler — build, test, demo.
#   make demo    simulator + handler: a spot notice drains a simulated node (needs only Rust);
#                CLOUD=gcp|azure|alibaba tells that cloud's story (default aws)
#   make test    unit + integration tests (the README's test command; CI runs it)
#   make build   static, stripped musl binary: $(BIN)
#   make size    size of that binary, plain and gzip -9
#   make timeline  draw the demo's drain as docs/drain-timeline.svg (the README shows it)
#   make metrics-check  `promtool check metrics` on a real scrape (installs Debian's prometheus if needed)

KUBE_VERSION ?= 1.32.0
TARGET       ?= x86_64-unknown-linux-musl
BIN          := target/$(TARGET)/release/spot-termination-notice-handler
CARGO        ?= cargo
CLOUD        ?= aws
export KUBE_VERSION
# The simulator's cloud only: the handler detects it (CLOUD=auto), as in a cluster.
unexport CLOUD

# ring compiles C for the musl target: use musl-gcc when installed (Debian: musl-tools),
# else the host gcc, which works because ring's C needs no libc headers.
ifeq ($(shell command -v x86_64-linux-musl-gcc 2>/dev/null),)
export CC_x86_64_unknown_linux_musl ?= gcc
endif

.PHONY: all build size test demo timeline metrics-check lint fmt clean

all: build

# Shipping targets (image, arm64, manifests and chart checks) live in mk/*.mk.
-include mk/*.mk

# The x86_64 binary is linked with ld's default script minus the unwind tables (mk/no-eh-frame.sh:
# panic = "abort", nothing unwinds; 160 KB less). The flags repeat .cargo/config.toml's, which this
# variable replaces.
NO_EH_LD := $(abspath target/no-eh-frame.ld)
ifeq ($(TARGET),x86_64-unknown-linux-musl)
build: export CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS = -C relocation-model=static -C force-unwind-tables=no -C link-arg=-Wl,--no-eh-frame-hdr -C link-arg=-Wl,-T,$(NO_EH_LD)
endif

build:
	rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || rustup target add $(TARGET)
	@mkdir -p target && sh mk/no-eh-frame.sh > $(NO_EH_LD).tmp && mv $(NO_EH_LD).tmp $(NO_EH_LD)
	$(CARGO) build --release --locked --target $(TARGET) -p spot-termination-notice-handler
	@file $(BIN) 2>/dev/null || true

size: build
	@bytes=$$(stat -c %s $(BIN)); gz=$$(gzip -9 -n -c $(BIN) | wc -c); \
	  echo "binary $(BIN): $$bytes bytes ($$(( bytes / 1024 )) KiB), gzip -9: $$gz bytes"

test:
	$(CARGO) test --locked --workspace
	$(CARGO) fmt --all -- --check

demo:
	$(CARGO) build --locked --bins --workspace
	target/debug/stnh-sim --scenario demo --cloud $(CLOUD) --run -- target/debug/spot-termination-notice-handler

# The picture in the README: the demo's drain, drawn by the simulator from its own logs.
timeline:
	$(CARGO) build --locked --bins --workspace
	mkdir -p docs
	target/debug/stnh-sim --scenario demo --quiet --timeline docs/drain-timeline.svg \
	  --run -- target/debug/spot-termination-notice-handler

# promtool comes with Debian's prometheus package; the test fails (it does not skip) when it is missing here.
metrics-check:
	@command -v promtool >/dev/null || { echo "metrics-check: installing promtool (Debian package prometheus)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } || \
	  echo "metrics-check: could not install the prometheus package"; }
	STNH_REQUIRE_PROMTOOL=1 $(CARGO) test --locked --test metrics promtool_accepts_a_real_scrape -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
