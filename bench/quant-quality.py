#!/usr/bin/env python3
"""Quality per quantization type: perplexity, KL divergence and top-1 agreement against an
F32 base, measured with dsinfer's own quantizer and evaluator (docs/quantization.md,
"Quality per type").

  bench/quant-quality.py --model smollm2=SmolLM2.gguf --model qwen=Qwen.gguf [options]

For each NAME=MODEL: MODEL is dequantized to WORK/NAME/base-f32.gguf, every --types type is
quantized from that base, and `dsinfer perplexity -m TYPE.gguf -f TEXT --kl-base base-f32.gguf
-t T --json` scores it. --act-f32 types are scored again with DSINFER_ACT=f32 (exact f32
activations instead of the default 8-bit ones). With --llama-quantize, llama.cpp's quantizer
(no importance matrix) makes one more q4_k_m from the same base, scored by the same evaluator.

Files and results are kept in WORK and reused on a rerun (--fresh remakes them), so an
interrupted run resumes. Prints one markdown table per model, then the activation-mode table.
Stdlib only; runs everything sequentially.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TYPES = "q8_0,q6_k,q5_k_m,q5_k,q5_1,q5_0,q4_k_m,q4_k,q4_1,q4_0,f16,bf16"

# (block bytes, block elements) per GGUF dtype, to turn dsinfer info's bytes into weight counts
BLOCKS = {
    "F32": (4, 1), "F16": (2, 1), "BF16": (2, 1), "Q8_0": (34, 32), "Q4_0": (18, 32), "Q4_1": (20, 32),
    "Q5_0": (22, 32), "Q5_1": (24, 32), "Q4_K": (144, 256), "Q5_K": (176, 256), "Q6_K": (210, 256),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None):
    log("+ " + ("DSINFER_ACT=f32 " if env and env.get("DSINFER_ACT") else "") + " ".join(cmd))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"quant-quality: command failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def make(path, cmd, fresh):
    if fresh or not os.path.exists(path):
        run(cmd)
    return path


def info(args, path):
    d = json.loads(run([args.dsinfer, "info", path, "--json"]))
    weights = {t: b // BLOCKS[t][0] * BLOCKS[t][1] for t, b in d["bytes_per_dtype"].items()}
    total = sum(weights.values())
    mix = ", ".join(f"{t} {100 * n / total:.0f}%" for t, n in sorted(weights.items(), key=lambda kv: -kv[1])
                    if n / total >= 0.005)
    return {"size_mib": os.path.getsize(path) / 2**20, "bpw": 8 * d["weight_bytes"] / d["parameters"], "mix": mix}


def score(args, model, base, cache, act_f32=False):
    """Perplexity result of model against base, cached as JSON next to the model."""
    if not args.fresh and os.path.exists(cache):
        with open(cache) as f:
            return json.load(f)
    env = dict(os.environ)
    env.pop("DSINFER_ACT", None)
    if act_f32:
        env["DSINFER_ACT"] = "f32"
    cmd = [args.dsinfer, "perplexity", "-m", model, "-f", args.text, "--kl-base", base, "-t", str(args.threads),
           "--json"]
    if args.chunks:
        cmd += ["--chunks", str(args.chunks)]
    r = json.loads(run(cmd, env))
    with open(cache + ".tmp", "w") as f:
        json.dump(r, f)
    os.replace(cache + ".tmp", cache)
    return r


def row(label, i, r):
    return (f"| {label} | {i['size_mib']:.1f} | {i['bpw']:.2f} | {r['ppl']:.4f} ± {r['ppl_err']:.4f} | "
            f"{r['kl']:.6f} ± {r['kl_err']:.6f} | {100 * r['top1_agreement']:.2f} ± {100 * r['top1_agreement_err']:.2f} | "
            f"{i['mix']} |")


def evaluate(args, name, src):
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    base = make(os.path.join(work, "base-f32.gguf"),
                [args.dsinfer, "quantize", src, os.path.join(work, "base-f32.gguf"), "--type", "f32", "-t",
                 str(args.threads)], args.fresh)
    lines, act_lines, base_result = [], [], None
    entries = [(t, f"dsinfer {t}") for t in args.types]
    if args.llama_quantize:
        entries.append(("llama-q4_k_m", "llama.cpp q4_k_m"))
    for t, label in entries:
        path = os.path.join(work, t + ".gguf")
        if t == "llama-q4_k_m":
            make(path, [args.llama_quantize, base, path, "Q4_K_M", str(args.threads)], args.fresh)
        else:
            make(path, [args.dsinfer, "quantize", base, path, "--type", t, "-t", str(args.threads)], args.fresh)
        i = info(args, path)
        r = score(args, path, base, os.path.join(work, t + ".json"))
        base_result = base_result or r
        lines.append(row(label, i, r))
        if t in args.act_f32:
            rf = score(args, path, base, os.path.join(work, t + ".act-f32.json"), act_f32=True)
            act_lines.append(f"| {name} | {t} | {r['ppl']:.4f} | {rf['ppl']:.4f} | {r['kl']:.6f} | {rf['kl']:.6f} | "
                             f"{100 * r['top1_agreement']:.2f} | {100 * rf['top1_agreement']:.2f} |")
    bi = info(args, base)
    head = [f"### {name}", "",
            f"Base: `{os.path.basename(src)}` dequantized to F32 ({bi['size_mib']:.1f} MiB), "
            f"PPL {base_result['base_ppl']:.4f} ± {base_result['base_ppl_err']:.4f} over "
            f"{base_result['n_scored']} scored positions ({base_result['n_chunks']} chunks of {base_result['n_ctx']}).",
            "", "| type | MiB | bits/weight | PPL | KL(base‖type) | top-1 % | weights by type |",
            "|---|---|---|---|---|---|---|"]
    return head + lines + [""], act_lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, metavar="NAME=MODEL",
                   help="a model (GGUF file or HF directory) and the name its files and table get")
    p.add_argument("--dsinfer", default=os.path.join(ROOT, "build", "dsinfer"))
    p.add_argument("--text", default=os.path.join(ROOT, "tests", "fixtures", "text", "apache-2.0.txt"))
    p.add_argument("--work", default=os.path.expanduser("~/.cache/dsinfer/quant-eval"))
    p.add_argument("--types", default=TYPES, help="comma-separated quantize types (default: %(default)s)")
    p.add_argument("--act-f32", default="q8_0,q6_k,q4_k_m", help="types also scored with DSINFER_ACT=f32 ('' = none)")
    p.add_argument("--llama-quantize", help="llama.cpp's llama-quantize, for the comparison row")
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("--chunks", type=int, help="score only the first N chunks")
    p.add_argument("--fresh", action="store_true", help="remake files and results that WORK already holds")
    args = p.parse_args()
    args.types = [t for t in args.types.split(",") if t]
    args.act_f32 = [t for t in args.act_f32.split(",") if t]
    if not os.access(args.dsinfer, os.X_OK):
        sys.exit(f"quant-quality: {args.dsinfer} is not an executable (build first, or pass --dsinfer)")
    models = []
    for m in args.model:
        name, sep, src = m.partition("=")
        if not sep or not name or not src or "/" in name:
            sys.exit(f"quant-quality: --model takes NAME=MODEL with a plain NAME, not '{m}'")
        if not os.path.exists(src):
            sys.exit(f"quant-quality: {src}: no such file or directory")
        models.append((name, src))
    tables, act = [], []
    for name, src in models:
        t, a = evaluate(args, name, src)
        tables += t
        act += a
    print("\n".join(tables))
    if act:
        print("Activations: default 8-bit vs DSINFER_ACT=f32\n")
        print("| model | type | PPL (8-bit act) | PPL (f32 act) | KL (8-bit act) | KL (f32 act) | top-1 % (8-bit) | top-1 % (f32) |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(act))


if __name__ == "__main__":
    main()
