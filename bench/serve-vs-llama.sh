#!/usr/bin/env bash
# dsinfer serve against llama.cpp's llama-server on the same GGUF, one server at a time,
# alternating ours / theirs for ROUNDS rounds; each round measures 1, 4 and 16 concurrent
# streams with bench/serve-load.py, then the medians and ratios are printed.
#   LLAMA_SERVER=/path/to/llama-server bench/serve-vs-llama.sh MODEL.gguf [ROUNDS] [THREADS]
# llama.cpp is not part of this repository (docs/benchmarks.md says how it was built);
# LLAMA_SERVER_ARGS adds flags to it (default "--no-repack": its AMX path crashes on the host
# we measured). Both servers get 16 slots of 2048 tokens.
set -euo pipefail
model=$1 rounds=${2:-3} threads=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
: "${LLAMA_SERVER:?set LLAMA_SERVER to a llama-server binary}"
port=18190
results=$(mktemp)
trap 'rm -f "$results"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT

wait_ready() {
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "server on port $port did not become ready" >&2
  return 1
}

load() { # name streams requests
  python3 "$here/bench/serve-load.py" --url "http://127.0.0.1:$port" --streams "$2" --requests "$3" --max-tokens 64 |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sys.argv[1], sys.argv[2], d["tok_per_s"], d["ttft_p50_ms"], d["ttft_p99_ms"])' "$1" "$2"
}

measure() { # name, then the server command
  local name=$1; shift
  "$@" >/tmp/serve-vs-llama-$name.log 2>&1 &
  pid=$!
  wait_ready
  python3 "$here/bench/serve-load.py" --url "http://127.0.0.1:$port" --streams 4 --requests 1 --max-tokens 16 --warmup 2 >/dev/null
  { load "$name" 1 8; load "$name" 4 4; load "$name" 16 2; } | tee -a "$results"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
}

for r in $(seq "$rounds"); do
  echo "== round $r"
  measure dsinfer "$here/build/dsinfer" serve -m "$model" --port $port --parallel 16 --ctx 2048 -t "$threads"
  # shellcheck disable=SC2086
  measure llama "$LLAMA_SERVER" -m "$model" --port $port -np 16 -c 32768 -t "$threads" --threads-batch "$threads" \
    ${LLAMA_SERVER_ARGS:---no-repack}
done

python3 - "$results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, streams, tok, p50, p99 = line.split()
    rows[(name, int(streams))].append((float(tok), float(p50), float(p99)))
med = lambda xs, k: statistics.median(x[k] for x in xs)
print("| streams | ours tok/s | llama-server tok/s | ours / llama | ours TTFT p50 / p99 ms | llama-server TTFT p50 / p99 ms |")
print("|---|---|---|---|---|---|")
for s in (1, 4, 16):
    o, l = rows[("dsinfer", s)], rows[("llama", s)]
    print(f"| {s} | {med(o, 0):.1f} | {med(l, 0):.1f} | {med(o, 0) / med(l, 0):.2f}× | "
          f"{med(o, 1):.0f} / {med(o, 2):.0f} | {med(l, 1):.0f} / {med(l, 2):.0f} |")
PY
