# Shipping: container image (amd64, arm64, multi-arch), Kubernetes manifests, Helm chart, and their checks.
# Included by the top-level Makefile (`-include mk/*.mk`), which defines KUBE_VERSION, TARGET, BIN, CARGO
# and `build`.
#
#   make image             FROM-scratch image of $(BIN), tagged $(IMAGE):$(KUBE_VERSION)-$(REVISION) and $(IMAGE):$(VERSION)
#   make build-arm64       static aarch64-unknown-linux-musl binary: $(ARM64_BIN)
#   make image-arm64       the same image for linux/arm64, tagged ...-arm64
#   make image-multiarch   one multi-arch manifest list (linux/amd64 + linux/arm64) under both tags
#   make manifests-check   render the chart, validate chart + manifests/ against Kubernetes schemas, schema tests
#   make rbac-check        replay the API requests the integration tests logged against the ClusterRoles
#   make arm64-smoke       the arm64 binary under qemu-aarch64-static against the simulator: notice -> drain
#
# Tag scheme (the seed's): <KUBE_VERSION>-<REVISION>, e.g. 1.32.0-1. REVISION is a small integer, the image
# revision for that Kubernetes version: start at 1, bump it when you publish a new image for the same
# KUBE_VERSION, reset it to 1 when KUBE_VERSION changes. The git commit goes into the
# org.opencontainers.image.revision label, not the tag. Every image is also tagged with the crate version.
#
# Podman instead of docker (root, no engine, as in CI):
#   make image CONTAINER_TOOL=podman PODMAN_FLAGS=--storage-driver=vfs PODMAN_BUILD_FLAGS=--isolation=chroot
#
# arm64 cross-build prerequisites (Debian 12): `apt-get install clang llvm` (ring's C code: clang + llvm-ar;
# or gcc-aarch64-linux-gnu with ARM64_CC=aarch64-linux-gnu-gcc ARM64_AR=aarch64-linux-gnu-ar);
# the linker is rust-lld, shipped with rustup's toolchain. arm64-smoke: `apt-get install qemu-user-static`.
# Checks: python3 with pip; manifests/tests/requirements.txt is installed with pip when missing.

IMAGE              ?= ghcr.io/spot-termination-notice-handler/spot-termination-notice-handler
REVISION           ?= 1
VERSION             = $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
GIT_COMMIT          = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE       ?= https://github.com/spot-termination-notice-handler/spot-termination-notice-handler
IMAGE_TAG          := $(KUBE_VERSION)-$(REVISION)
CONTAINER_TOOL     ?= docker
PODMAN_FLAGS       ?=
PODMAN_BUILD_FLAGS ?=
PUSH               ?=

# Cargo's target directory (CARGO_TARGET_DIR wins, as for cargo itself).
SHIP_TARGET_DIR    := $(or $(CARGO_TARGET_DIR),target)
ARM64_TARGET       := aarch64-unknown-linux-musl
ARM64_BIN          := $(SHIP_TARGET_DIR)/$(ARM64_TARGET)/release/spot-termination-notice-handler
ARM64_CC           ?= clang
ARM64_AR           ?= llvm-ar
SIM                ?= $(SHIP_TARGET_DIR)/debug/stnh-sim
IMAGE_CONTEXT      := $(SHIP_TARGET_DIR)/image-context
MULTIARCH_OCI      ?= $(SHIP_TARGET_DIR)/image-multiarch-oci

PYTHON             ?= python3
SHIP_TESTS         := manifests/tests
CHART              := manifests/helm/spot-termination-notice-handler
# Oldest and newest Kubernetes versions whose schemas kubernetes-validate ships and that we support.
KUBE_MIN           ?= 1.25
KUBE_MAX           ?= 1.37
API_REQUEST_LOGS   ?= $(SHIP_TARGET_DIR)/api-requests

# podman's global flags (e.g. --storage-driver=vfs) go before the subcommand, build flags after it.
ifeq ($(notdir $(firstword $(CONTAINER_TOOL))),podman)
CT       := $(CONTAINER_TOOL) $(PODMAN_FLAGS)
CT_BUILD := $(CT) build $(PODMAN_BUILD_FLAGS)
else
CT       := $(CONTAINER_TOOL)
CT_BUILD := $(CT) build
endif

# $(call image-build,BINARY,PLATFORM,TAG-SUFFIX)
define image-build
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	$(if $(filter podman,$(notdir $(firstword $(CONTAINER_TOOL)))),-$(CT) manifest rm $(IMAGE):$(IMAGE_TAG)$(3) $(IMAGE):$(VERSION)$(3) >/dev/null 2>&1)
	cp $(1) $(IMAGE_CONTEXT)/spot-termination-notice-handler
	$(CT_BUILD) --platform $(2) -f Dockerfile.scratch \
	  --build-arg BIN=spot-termination-notice-handler \
	  --build-arg VERSION=$(VERSION) --build-arg KUBE_VERSION=$(KUBE_VERSION) \
	  --build-arg VCS_REF=$(GIT_COMMIT) --build-arg SOURCE=$(IMAGE_SOURCE) \
	  -t $(IMAGE):$(IMAGE_TAG)$(3) -t $(IMAGE):$(VERSION)$(3) $(IMAGE_CONTEXT)
	@size=$$($(CT) image inspect --format '{{.Size}}' $(IMAGE):$(IMAGE_TAG)$(3)); \
	  gz=$$($(CT) save $(IMAGE):$(IMAGE_TAG)$(3) | gzip -9 -n | wc -c); \
	  echo "image $(IMAGE):$(IMAGE_TAG)$(3) ($(2)): $$size bytes ($$(( size / 1024 )) KiB) uncompressed, $$gz bytes as gzip -9 of '$(notdir $(firstword $(CONTAINER_TOOL))) save'"
endef

.PHONY: image image-arm64 image-multiarch build-arm64 arm64-smoke manifests-check rbac-check ship-check ship-pydeps

image: build
	$(call image-build,$(BIN),linux/amd64,)

image-arm64: build-arm64
	$(call image-build,$(ARM64_BIN),linux/arm64,-arm64)

build-arm64:
	rustup target list --installed 2>/dev/null | grep -qx $(ARM64_TARGET) || rustup target add $(ARM64_TARGET)
	@command -v $(ARM64_CC) >/dev/null || { echo "build-arm64: $(ARM64_CC) not found: apt-get install clang llvm (or set ARM64_CC/ARM64_AR)"; exit 1; }
	@command -v $(ARM64_AR) >/dev/null || { echo "build-arm64: $(ARM64_AR) not found: apt-get install llvm (or set ARM64_AR)"; exit 1; }
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-C link-self-contained=yes" \
	CC_aarch64_unknown_linux_musl=$(ARM64_CC) AR_aarch64_unknown_linux_musl=$(ARM64_AR) \
	  $(CARGO) build --release --locked --target $(ARM64_TARGET) -p spot-termination-notice-handler
	@file $(ARM64_BIN) 2>/dev/null || true
	@bytes=$$(stat -c %s $(ARM64_BIN)); gz=$$(gzip -9 -n -c $(ARM64_BIN) | wc -c); \
	  echo "binary $(ARM64_BIN): $$bytes bytes ($$(( bytes / 1024 )) KiB), gzip -9: $$gz bytes"

# Multi-arch: podman builds both images (also tagged -amd64/-arm64) into one local manifest list (no emulation
# needed: the Dockerfile only COPYs); PUSH=1 pushes it, else it is written as an OCI layout to $(MULTIARCH_OCI).
# (podman 4.3 quirk: `podman images` errors while such a list exists; `make image` or `podman manifest rm`
# removes it.) docker needs a registry for a manifest list: each arch is built with buildx and
# pushed under a -amd64/-arm64 tag, then `buildx imagetools create` joins them (PUSH=1 required).
image-multiarch: build build-arm64
ifeq ($(notdir $(firstword $(CONTAINER_TOOL))),podman)
	set -e; for t in $(IMAGE_TAG) $(VERSION); do \
	  $(CT) manifest rm $(IMAGE):$$t >/dev/null 2>&1 || $(CT) rmi $(IMAGE):$$t >/dev/null 2>&1 || true; \
	done
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/amd64 $(IMAGE_CONTEXT)/arm64
	cp $(BIN) $(IMAGE_CONTEXT)/amd64/spot-termination-notice-handler
	cp $(ARM64_BIN) $(IMAGE_CONTEXT)/arm64/spot-termination-notice-handler
	set -e; for arch in amd64 arm64; do \
	  $(CT_BUILD) --platform linux/$$arch -f Dockerfile.scratch \
	    --build-arg BIN=$$arch/spot-termination-notice-handler \
	    --build-arg VERSION=$(VERSION) --build-arg KUBE_VERSION=$(KUBE_VERSION) \
	    --build-arg VCS_REF=$(GIT_COMMIT) --build-arg SOURCE=$(IMAGE_SOURCE) \
	    -t $(IMAGE):$(IMAGE_TAG)-$$arch --manifest $(IMAGE):$(IMAGE_TAG) $(IMAGE_CONTEXT); \
	done
	$(CT) tag $(IMAGE):$(IMAGE_TAG) $(IMAGE):$(VERSION)
	@echo "manifest list $(IMAGE):$(IMAGE_TAG) (also $(IMAGE):$(VERSION)):"
	@$(CT) manifest inspect $(IMAGE):$(IMAGE_TAG) | $(PYTHON) -c 'import json,sys; [print("  ", m["platform"]["os"] + "/" + m["platform"]["architecture"], m["digest"], m["size"]) for m in json.load(sys.stdin)["manifests"]]'
ifneq ($(PUSH),)
	$(CT) manifest push --all $(IMAGE):$(IMAGE_TAG) docker://$(IMAGE):$(IMAGE_TAG)
	$(CT) manifest push --all $(IMAGE):$(VERSION) docker://$(IMAGE):$(VERSION)
else
	rm -rf $(MULTIARCH_OCI)
	$(CT) manifest push --quiet --all $(IMAGE):$(IMAGE_TAG) oci:$(MULTIARCH_OCI)
	@echo "OCI image layout of the list: $(MULTIARCH_OCI) (skopeo copy --all oci:$(MULTIARCH_OCI) docker://...)"
endif
else
ifeq ($(PUSH),)
	@echo "image-multiarch with $(CONTAINER_TOOL): a manifest list lives in a registry; run with PUSH=1 (and docker login), or use CONTAINER_TOOL=podman"; exit 1
else
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/amd64 $(IMAGE_CONTEXT)/arm64
	cp $(BIN) $(IMAGE_CONTEXT)/amd64/spot-termination-notice-handler
	cp $(ARM64_BIN) $(IMAGE_CONTEXT)/arm64/spot-termination-notice-handler
	set -e; for arch in amd64 arm64; do \
	  $(CT) buildx build --platform linux/$$arch -f Dockerfile.scratch --provenance=false --push \
	    --build-arg BIN=$$arch/spot-termination-notice-handler \
	    --build-arg VERSION=$(VERSION) --build-arg KUBE_VERSION=$(KUBE_VERSION) \
	    --build-arg VCS_REF=$(GIT_COMMIT) --build-arg SOURCE=$(IMAGE_SOURCE) \
	    -t $(IMAGE):$(IMAGE_TAG)-$$arch $(IMAGE_CONTEXT); \
	done
	$(CT) buildx imagetools create -t $(IMAGE):$(IMAGE_TAG) -t $(IMAGE):$(VERSION) \
	  $(IMAGE):$(IMAGE_TAG)-amd64 $(IMAGE):$(IMAGE_TAG)-arm64
endif
endif

# The arm64 binary, emulated, against the simulator: a short notice -> cordon -> drain scenario.
# No binfmt_misc here, so qemu-aarch64-static is called explicitly.
arm64-smoke: build-arm64
	@command -v qemu-aarch64-static >/dev/null || { echo "arm64-smoke: qemu-aarch64-static not found: apt-get install qemu-user-static"; exit 1; }
	$(CARGO) build --locked -p stnh-sim --bin stnh-sim
	$(SHIP_TESTS)/arm64_smoke.sh $(SIM) $(ARM64_BIN) $(API_REQUEST_LOGS)/arm64-smoke.log

ship-pydeps:
	@$(PYTHON) $(SHIP_TESTS)/pydeps.py $(SHIP_TESTS)/requirements.txt || \
	  $(PYTHON) -m pip install -q --disable-pip-version-check --root-user-action=ignore -r $(SHIP_TESTS)/requirements.txt

manifests-check: ship-pydeps
	$(PYTHON) $(SHIP_TESTS)/check_manifests.py --kube-versions $(KUBE_MIN),$(KUBE_MAX)

rbac-check: ship-pydeps
	$(PYTHON) $(SHIP_TESTS)/rbac_check.py --self-test
	$(PYTHON) $(SHIP_TESTS)/rbac_check.py $(API_REQUEST_LOGS)

ship-check: manifests-check rbac-check
