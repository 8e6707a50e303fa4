#!/usr/bin/env bash
# Prefill and decode tok/s of dsinfer and llama.cpp's llama-bench on the same GGUF, alternated
# A B A B on a noisy host, with medians and ratios:
#   LLAMA_BENCH=/path/to/llama-bench bench/vs-llama-bench.sh MODEL.gguf [THREADS] [ROUNDS] [PROMPT] [GEN]
# llama.cpp is not part of this repository: docs/benchmarks.md says how the one we compare
# against was built. LLAMA_BENCH_ARGS adds flags to llama-bench (e.g. "--repack 0", needed
# on hosts where its AMX repacking crashes). Prints one line per run, then a summary line
# per side and the ratios ours / llama.cpp.
set -euo pipefail
model=$1 threads=${2:-2} rounds=${3:-3} pp=${4:-512} tg=${5:-128}
here=$(cd "$(dirname "$0")/.." && pwd)
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
ours=() theirs=()
for r in $(seq "$rounds"); do
  o=$("$here/build/dsinfer" bench -m "$model" -p "$pp" -n "$tg" -t "$threads" -r 1 --json |
      python3 -c 'import json,sys; d=json.loads(sys.stdin.readline()); print(d["prefill_tok_s"], d["decode_tok_s"])')
  # shellcheck disable=SC2086
  t=$("$LLAMA_BENCH" -m "$model" -t "$threads" -p "$pp" -n "$tg" -r 1 -o json ${LLAMA_BENCH_ARGS:-} 2>/dev/null |
      python3 -c 'import json,sys
rows = json.load(sys.stdin)
pp = [r["avg_ts"] for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0]
tg = [r["avg_ts"] for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0]
print(pp[0], tg[0])')
  ours+=("$o") theirs+=("$t")
  echo "round $r: dsinfer pp/tg $o | llama.cpp pp/tg $t"
done
python3 - "$rounds" "${ours[@]}" "${theirs[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); vals = [tuple(map(float, v.split())) for v in sys.argv[2:]]
ours, theirs = vals[:n], vals[n:]
med = lambda rows, k: statistics.median(r[k] for r in rows)
for name, rows in (("dsinfer", ours), ("llama.cpp", theirs)):
    print(f"{name}: prefill {med(rows, 0):.2f} tok/s, decode {med(rows, 1):.2f} tok/s (medians of {n})")
print(f"ratio dsinfer/llama.cpp: prefill {med(ours, 0) / med(theirs, 0):.2f}x, decode {med(ours, 1) / med(theirs, 1):.2f}x")
PY
