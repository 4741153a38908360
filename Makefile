# spot-termination-notice-handler — build, test, demo.
#   make demo    simulator + handler: a spot notice drains a simulated node (needs only Rust);
#                CLOUD=gcp|azure|alibaba tells that cloud's story (default aws)
#   make test    unit + integration tests (the README's test command; CI runs it)
#   make build   static, stripped musl binary: $(BIN)
#   make size    size of that binary, plain and gzip -9

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

.PHONY: all build size test demo lint fmt clean

all: build

# Shipping targets (image, arm64, manifests and chart checks) live in mk/*.mk.
-include mk/*.mk

build:
	rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || rustup target add $(TARGET)
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

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
