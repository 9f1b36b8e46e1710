#!/usr/bin/env bash
# Runs Convolve, PyTorch and Keras on the same workloads side by side, each workload in a fresh
# process, REPEATS times, and prints medians and ratios. Needs CONVOLVE_DATA_DIR and two Python
# venvs: TORCH_PY (torch==2.13.0+cpu numpy) and KERAS_PY (tensorflow-cpu, keras 3).
#   Benchmarks/compare.sh [W1 W2 W3] ; env: REPEATS=3 EPOCHS=3 W3_LIMIT=12800
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PY=${TORCH_PY:-/opt/torchvenv/bin/python}
KERAS_PY=${KERAS_PY:-/opt/tfvenv/bin/python}
REPEATS=${REPEATS:-3}; EPOCHS=${EPOCHS:-3}; W3_LIMIT=${W3_LIMIT:-12800}
swift build -c release --product convolve-bench >/dev/null
workloads=("$@"); [ ${#workloads[@]} -eq 0 ] && workloads=(W1 W2 W3)
out=$(mktemp)
for w in "${workloads[@]}"; do
  lim=(); [ "$w" = W3 ] && lim=(--limit "$W3_LIMIT")
  for r in $(seq "$REPEATS"); do
    .build/release/convolve-bench "$w" --epochs "$EPOCHS" "${lim[@]}" | tail -1 | sed "s/^/convolve /" >> "$out"
    "$TORCH_PY" Benchmarks/pytorch_baseline.py "$w" --epochs "$EPOCHS" "${lim[@]}" | tail -1 | sed "s/^/pytorch /" >> "$out"
    "$KERAS_PY" Benchmarks/keras_baseline.py "$w" --epochs "$EPOCHS" "${lim[@]}" 2>/dev/null | tail -1 | sed "s/^/keras /" >> "$out"
  done
done
python3 - "$out" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
res = {}
for fw, w, thr, tr, ev, first, rss, *_ in rows:
    res.setdefault((w, fw), []).append((float(tr), float(ev), float(first), float(rss)))
print(f"{'workload':8} {'framework':9} {'train img/s':>11} {'eval img/s':>10} {'first step s':>12} {'peak RSS MB':>11}  (medians of {len(next(iter(res.values())))})")
for w in sorted({k[0] for k in res}):
    med = {fw: [st.median(c) for c in zip(*res[(w, fw)])] for (ww, fw) in res if ww == w}
    for fw in ("convolve", "pytorch", "keras"):
        if fw in med:
            m = med[fw]; print(f"{w:8} {fw:9} {m[0]:11.0f} {m[1]:10.0f} {m[2]:12.2f} {m[3]:11.1f}")
    c = med.get("convolve")
    for fw in ("pytorch", "keras"):
        if c and fw in med:
            m = med[fw]; print(f"{w:8} ratio vs {fw}: train {c[0]/m[0]:.2f}x  eval {c[1]/m[1]:.2f}x  first step {m[2]/c[2]:.1f}x sooner  RSS {m[3]/c[3]:.1f}x smaller")
PY
rm -f "$out"
