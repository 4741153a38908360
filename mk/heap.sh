#!/bin/sh
# `make heap` (mk/heap.mk): one stnh-bench scenario with the handler under heaptrack, then the
# heap at its peak by the handler's deepest own frame.
set -eu
lib=$(dirname "$(readlink -f "$(command -v heaptrack)")")/../lib/heaptrack
preload=$(readlink -f "$lib/libheaptrack_preload.so")
interpret=$(readlink -f "$lib/libexec/heaptrack_interpret")
raw=$HEAP_DIR/raw
rm -rf "$raw" && mkdir -p "$raw"
wrapper=$HEAP_DIR/handler-under-heaptrack
cat > "$wrapper" <<WRAP
#!/bin/sh
exec env LD_PRELOAD=$preload DUMP_HEAPTRACK_OUTPUT=$raw/\$\$ $HEAP_BIN "\$@"
WRAP
chmod +x "$wrapper"
"$BENCH_TOOL" --only "$HEAP_ONLY" --reps 1 --long-reps 1 --bin "$wrapper" \
  --out "$HEAP_DIR/BENCHMARKS-$HEAP_ONLY.md" --work-dir "$HEAP_DIR/work"
# The largest recording is the drain's handler (others: short runs such as --version).
biggest=$(ls -S "$raw" | head -n 1)
"$interpret" < "$raw/$biggest" | gzip > "$HEAP_DIR/heaptrack.gz"
heaptrack_print -f "$HEAP_DIR/heaptrack.gz" --print-peaks 0 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -F "$HEAP_DIR/peak-stacks.txt" \
  --flamegraph-cost-type peak | grep -E "peak heap memory|allocations:" || true
python3 - "$HEAP_DIR/peak-stacks.txt" "$HEAP_TOP" <<'PY'
import collections, re, sys
by, total = collections.Counter(), 0
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    total += int(n)
    frames = stack.split(";")
    ours = [f for f in frames if "spot_termination_notice_handler" in f]
    key = re.sub(r"::h[0-9a-f]{16}", "", ours[-1] if ours else frames[-1] or "(unknown)")
    by[key.replace("spot_termination_notice_handler", "stnh")] += int(n)
print(f"heap at the peak: {total / 1024:.1f} KiB, by the handler's deepest own frame:")
for k, v in by.most_common(int(sys.argv[2])):
    print(f"{v / 1024:10.1f} KiB  {k[:120]}")
PY
echo "heaptrack data: $HEAP_DIR/heaptrack.gz (heaptrack_print -f it for the full report)"
