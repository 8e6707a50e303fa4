#!/usr/bin/env bash
# Prefill and decode speed of two dsinfer builds on one model, measured A B A B on a noisy host:
#   bench/prefill-ab.sh MODEL BIN_A BIN_B [PROMPT_TOKENS] [DECODE_TOKENS] [ROUNDS] [THREADS]
# (defaults 512, 16, 3, 2). Prints every reading and the medians.
# The quantized R1-Distill-Qwen-1.5B-shaped models (random weights, every matrix in one type):
#   .venv/bin/python tools/make-random-model.py --shape r1-distill-qwen-1.5b --dtype bf16 ~/.cache/dsinfer/bench/qwen1.5b-bf16
#   build/dsinfer quantize ~/.cache/dsinfer/bench/qwen1.5b-bf16 ~/.cache/dsinfer/bench/qwen1.5b-q4_0.gguf --type q4_0 --pure
set -euo pipefail
model=$1 a=$2 b=$3 p=${4:-512} n=${5:-16} rounds=${6:-3} threads=${7:-2}
run() { "$1" bench -m "$model" -p "$p" -n "$n" -t "$threads" -r 1 --json | head -n 1; }
res=()
for r in $(seq "$rounds"); do
  for bin in "$a" "$b"; do
    line=$(run "$bin")
    res+=("$bin $line")
    echo "round $r $bin: $line"
  done
done
printf '%s\n' "${res[@]}" | python3 -c '
import json, statistics, sys
by = {}
for line in sys.stdin:
    binary, js = line.split(" ", 1)
    d = json.loads(js)
    by.setdefault(binary, []).append((d["prefill_tok_s"], d["decode_tok_s"]))
for binary, v in by.items():
    print(f"{binary}: median prefill {statistics.median(x[0] for x in v):.2f} tok/s, "
          f"median decode {statistics.median(x[1] for x in v):.2f} tok/s over {len(v)} rounds")
'
