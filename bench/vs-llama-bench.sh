#!/usr/bin/env bash
# Prefill and decode tok/s of dsinfer and llama.cpp's llama-bench on the same GGUF, alternated
# A B A B on a noisy host, with medians and ratios:
#   LLAMA_BENCH=/path/to/llama-bench bench/vs-llama-bench.sh MODEL.gguf [THREADS] [ROUNDS] [PROMPT] [GEN]
# llama.cpp is not part of this repository: docs/benchmarks.md says how the one we compare
# against was built. LLAMA_BENCH_ARGS adds flags to llama-bench (e.g. "--repack 0", needed
# on hosts where its AMX repacking crashes). Prints one line per run, then a summary line
# per side, the ratios ours / llama.cpp, and each side's decode as a fraction of the read
# bandwidth measured beside it (../shared/tools/membw.c, once per round).
set -euo pipefail
model=$1 threads=${2:-2} rounds=${3:-3} pp=${4:-512} tg=${5:-128}
here=$(cd "$(dirname "$0")/.." && pwd)
: "${LLAMA_BENCH:?set LLAMA_BENCH to a llama-bench binary}"
membw=${TMPDIR:-/tmp}/dsinfer-membw
[ -x "$membw" ] || gcc -O3 -march=native -fopenmp "$here/../shared/tools/membw.c" -o "$membw"
bytes=$("$here/build/dsinfer" info "$model" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_bytes_per_token"])')
ours=() theirs=() bw=()
for r in $(seq "$rounds"); do
  bw+=("$(OMP_NUM_THREADS=$threads "$membw" | awk '/^ *read/ {print $(NF-1)}')")
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
  echo "round $r: membw ${bw[-1]} GB/s | dsinfer pp/tg $o | llama.cpp pp/tg $t"
done
python3 - "$rounds" "$bytes" "${bw[@]}" "${ours[@]}" "${theirs[@]}" <<'PY'
import statistics, sys
n, nbytes = int(sys.argv[1]), int(sys.argv[2])
bw = statistics.median(float(x) for x in sys.argv[3:3 + n])
vals = [tuple(map(float, v.split())) for v in sys.argv[3 + n:]]
ours, theirs = vals[:n], vals[n:]
med = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"decode reads {nbytes / 1e9:.3f} GB/token; median membw {bw:.2f} GB/s")
for name, rows in (("dsinfer", ours), ("llama.cpp", theirs)):
    frac = 100 * med(rows, 1) * nbytes / 1e9 / bw
    print(f"{name}: prefill {med(rows, 0):.2f} tok/s, decode {med(rows, 1):.2f} tok/s = {frac:.0f}% of membw (medians of {n})")
print(f"ratio dsinfer/llama.cpp: prefill {med(ours, 0) / med(theirs, 0):.2f}x, decode {med(ours, 1) / med(theirs, 1):.2f}x")
PY
