#!/usr/bin/env bash
# make arm64-smoke: the aarch64 binary, under qemu-aarch64-static (no binfmt_misc: called explicitly),
# against the simulator's demo scenario with a short notice: notice -> cordon -> evictions -> Slack summary.
# Fails unless the node ended cordoned, the simulator saw the drain summary, evictions succeeded and only
# DaemonSet/mirror pods are left on the node.
#
#   arm64_smoke.sh SIM ARM64_BIN [API_LOG_OUT]
# API_LOG_OUT (optional): also write the requests the handler made as `METHOD PATH` lines (rbac-check input).
set -euo pipefail
sim=${1:?usage: arm64_smoke.sh SIM ARM64_BIN [API_LOG_OUT]}
bin=${2:?usage: arm64_smoke.sh SIM ARM64_BIN [API_LOG_OUT]}
api_out=${3:-}
qemu=${QEMU_AARCH64:-qemu-aarch64-static}

# ELF e_machine (offset 18, little-endian) 183 = EM_AARCH64.
python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(h[:4] != b"\x7fELF" or h[18:20] != b"\xb7\x00")' "$bin" \
  || { echo "arm64-smoke: $bin is not an aarch64 ELF binary"; exit 1; }
"$qemu" "$bin" --version

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
rc=0
# Notice 1 s after start, deadline 25 s later: the budget-blocked pods are force-deleted at deadline minus
# DRAIN_RESERVE (20 s), so the whole run takes about 10 s. --exit-after bounds a handler that never drains.
timeout 150 "$sim" --scenario demo --notice-after 1s --deadline 25s --exit-after 90s \
  --api-log "$work/api.jsonl" --run -- "$qemu" "$bin" >"$work/out.log" 2>&1 || rc=$?
echo "arm64-smoke: simulator exited with $rc after $(( $(date +%s) - start )) s; its summary:"
sed -n '/== stnh-sim summary/,$p' "$work/out.log"

fail=()
grep -q 'node cordoned and drain summary received; stopping' "$work/out.log" \
  || fail+=("the simulator never saw the node cordoned with a drain summary on Slack")
grep -Eq '^node [^ ]+: unschedulable=true' "$work/out.log" || fail+=("the node is not cordoned")
grep -Eq '^evictions: [1-9][0-9]* \(.*x 20[01]' "$work/out.log" || fail+=("no successful eviction")
# Pods left on the node: the lines after "pods left on the node: N" up to "evictions:"; kind is the last column.
left_bad=$(sed -n '/^pods left on the node:/,/^evictions:/p' "$work/out.log" | sed '1d;$d' \
  | awk '$NF != "DaemonSet" && $NF != "mirror"')
[ -z "$left_bad" ] || fail+=("pods other than DaemonSet/mirror pods are still on the node: $left_bad")
grep -q '^child exit code: 0' "$work/out.log" || fail+=("the handler did not exit 0 on SIGTERM")

if [ -n "$api_out" ] && [ -s "$work/api.jsonl" ]; then
  mkdir -p "$(dirname "$api_out")"
  python3 -c 'import json,sys; [print(r["method"], r["path"]) for r in map(json.loads, sys.stdin) if r]' \
    <"$work/api.jsonl" >"$api_out"
  echo "arm64-smoke: $(wc -l <"$api_out") API requests written to $api_out"
fi

if [ ${#fail[@]} -gt 0 ]; then
  echo "arm64-smoke: FAILED:"; printf '  %s\n' "${fail[@]}"
  echo "--- last 60 lines of the run:"; tail -n 60 "$work/out.log"
  exit 1
fi
echo "arm64-smoke: passed: the aarch64 binary drained the simulated node under qemu"
