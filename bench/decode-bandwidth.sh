#!/usr/bin/env bash
# Decode speed as a fraction of the machine's read bandwidth, measured A B A B on a noisy host:
#   bench/decode-bandwidth.sh MODEL [THREADS] [ROUNDS]
# Each round runs ../shared/tools/membw.c (median read GB/s) and `dsinfer bench -p 0 -n 64`
# (DECODE_TOKENS overrides 64);
# prints every reading, then medians and the fraction
#   decode_tok_s × decode_bytes_per_token ÷ read bandwidth.
set -euo pipefail
model=$1 threads=${2:-2} rounds=${3:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
membw_src=$here/../shared/tools/membw.c
membw=${TMPDIR:-/tmp}/dsinfer-membw
[ -x "$membw" ] || gcc -O3 -march=native -fopenmp "$membw_src" -o "$membw"
bytes=$("$here/build/dsinfer" info "$model" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["decode_bytes_per_token"])')
bw=() tok=()
read_bw() { OMP_NUM_THREADS=$threads "$membw" | awk '/^ *read/ {print $(NF-1)}'; }
for r in $(seq "$rounds"); do
  bw+=("$(read_bw)")
  tok+=("$("$here/build/dsinfer" bench -m "$model" -p 0 -n "${DECODE_TOKENS:-64}" -t "$threads" -r 1 --json | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["decode_tok_s"])')")
  echo "round $r: membw ${bw[-1]} GB/s, decode ${tok[-1]} tok/s"
done
bw+=("$(read_bw)")
echo "after: membw ${bw[-1]} GB/s"
python3 - "$bytes" "${#bw[@]}" "${bw[@]}" "${tok[@]}" <<'PY'
import statistics, sys
bytes_per_tok = int(sys.argv[1]); n_bw = int(sys.argv[2])
bw = [float(x) for x in sys.argv[3:3 + n_bw]]; tok = [float(x) for x in sys.argv[3 + n_bw:]]
mbw, mtok = statistics.median(bw), statistics.median(tok)
print(f"decode bytes/token {bytes_per_tok / 1e9:.3f} GB; median membw {mbw:.2f} GB/s; median decode {mtok:.3f} tok/s")
print(f"achieved {mtok * bytes_per_tok / 1e9:.2f} GB/s = {100 * mtok * bytes_per_tok / 1e9 / mbw:.1f}% of read bandwidth")
PY
