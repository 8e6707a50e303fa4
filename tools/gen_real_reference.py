#!/usr/bin/env python3
"""Make an outside (Hugging Face transformers) reference for a real GGUF model.

transformers loads the GGUF with AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which
dequantizes every tensor to float32 (with gguf-py) and, for llama, un-permutes attn_q/attn_k back to
HF layout (rotate-half RoPE). Everything below runs in float32 on the CPU, deterministically.

Writes a JSON with: prompt ids, greedy ids for N new tokens (no EOS stop) with per-step top1-top2
margins, and for every position of the teacher-forced sequence (prompt + greedy ids) the top-K
(id, logit) pairs and max|logit|; plus the decoded text, versions, and the GGUF's sha256.

Not run by tests or CI (it needs torch); the exact command is in tests/fixtures/real/README.md.
"""
import argparse
import hashlib
import importlib.metadata
import json
import os
import sys


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="path of the GGUF (from tools/fetch-models)")
    ap.add_argument("--model-name", required=True, help="fetch-models name, recorded in the JSON")
    ap.add_argument("--prompt-text", default="Water boils at 100 degrees Celsius. Ice melts at")
    ap.add_argument("--bos", type=int, default=None,
                    help="BOS id to put first (default: the GGUF's tokenizer.ggml.bos_token_id; -1: none)")
    ap.add_argument("--n-new", type=int, default=32)
    ap.add_argument("--topk", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import numpy as np
    import torch
    import transformers
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    gdir, gfile = os.path.split(os.path.abspath(a.gguf))
    gsha = sha256_file(a.gguf)

    rd = gguf.GGUFReader(a.gguf)

    def kv(key):
        f = rd.fields.get(key)
        if f is None:
            return None
        if f.types[0] == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode()
        return f.parts[f.data[0]].tolist()[0]

    arch = kv("general.architecture")
    gguf_bos = kv("tokenizer.ggml.bos_token_id")
    tensor_types = sorted({t.tensor_type.name for t in rd.tensors})
    del rd

    tok = AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
    model = AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32)
    model.eval()
    assert next(model.parameters()).dtype == torch.float32

    bos = gguf_bos if a.bos is None else (None if a.bos < 0 else a.bos)
    text_ids = tok(a.prompt_text, add_special_tokens=False)["input_ids"]
    prompt = ([bos] if bos is not None else []) + list(text_ids)

    # Greedy decoding, recomputing the whole sequence each step (no KV cache) so every step's logits
    # are a plain float32 forward pass.
    seq = list(prompt)
    greedy, margins, step_top1 = [], [], []
    with torch.no_grad():
        for _ in range(a.n_new):
            lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1].double()
            v, i = torch.topk(lg, 2)
            nxt = int(i[0])
            greedy.append(nxt)
            margins.append(round(float(v[0] - v[1]), 6))
            step_top1.append(round(float(v[0]), 5))
            seq.append(nxt)

        # Teacher-forced pass over prompt + all greedy ids: logits at every position.
        full = prompt + greedy
        logits = model(torch.tensor([full]), use_cache=False).logits[0].double()

        # Float32 noise estimate: the same teacher-forced pass in float64. Our engine differs from this
        # reference by summation order, so its float32 error is of the same order as this one.
        model64 = model.double()
        logits64 = model64(torch.tensor([full]), use_cache=False).logits[0]
        rel = ((logits - logits64).abs().max(dim=-1).values / logits64.abs().max(dim=-1).values)
        f32_vs_f64 = [float(x) for x in rel]
        top1_64 = [int(x) for x in torch.argmax(logits64, dim=-1)]
        top1_32 = [int(x) for x in torch.argmax(logits, dim=-1)]

    positions = []
    for p in range(len(full)):
        row = logits[p]
        v, i = torch.topk(row, a.topk)
        positions.append({
            "pos": p,
            "input_id": full[p],
            "max_abs_logit": round(float(row.abs().max()), 5),
            "top": [[int(ii), round(float(vv), 5)] for ii, vv in zip(i, v)],
        })
    # Consistency: the teacher-forced argmax at prompt_len-1+k is greedy[k] (same math, one pass).
    tf_argmax = [int(torch.argmax(logits[len(prompt) - 1 + k])) for k in range(a.n_new)]
    agree = sum(int(x == y) for x, y in zip(tf_argmax, greedy))

    cfg = model.config
    out = {
        "model": a.model_name,
        "gguf_file": gfile,
        "gguf_sha256": gsha,
        "architecture": arch,
        "gguf_tensor_types": tensor_types,
        "generator": "tools/gen_real_reference.py (Hugging Face transformers, GGUF dequantized to float32, CPU)",
        "versions": {
            "python": sys.version.split()[0],
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "accelerate": importlib.metadata.version("accelerate"),
            "numpy": np.__version__,
        },
        "hf_config": {
            "hidden_size": cfg.hidden_size,
            "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.num_key_value_heads,
            "intermediate_size": cfg.intermediate_size,
            "vocab_size": cfg.vocab_size,
            "rope_theta": getattr(cfg, "rope_theta", None),
            "rms_norm_eps": cfg.rms_norm_eps,
            "tie_word_embeddings": cfg.tie_word_embeddings,
            "max_position_embeddings": cfg.max_position_embeddings,
        },
        "dtype": "float32",
        "prompt_text": a.prompt_text,
        "bos_prepended": bos,
        "prompt_ids": prompt,
        "n_new": a.n_new,
        "eos_stop": False,
        "greedy_ids": greedy,
        "greedy_margins": margins,
        "greedy_top1_logits": step_top1,
        "teacher_forced_argmax_agrees": "%d/%d" % (agree, a.n_new),
        "generated_text": tok.decode(greedy),
        "full_text": tok.decode(prompt + greedy),
        "topk": a.topk,
        "f32_vs_f64_max_rel_err": float("%.3g" % max(f32_vs_f64)),
        "f32_vs_f64_note": "max over positions of max|logit32 - logit64| / max|logit64|: the float32"
                           " rounding noise of this reference (same weights run in float64)",
        "f32_vs_f64_top1_agree": "%d/%d" % (sum(int(x == y) for x, y in zip(top1_32, top1_64)), len(full)),
        "logits_note": "positions cover prompt_ids + greedy_ids (teacher forced, one pass, no KV cache);"
                       " top pairs are (token id, float32 logit rounded to 1e-5); position p predicts"
                       " the token at p+1",
        "positions": positions,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s: prompt %d ids, greedy %s, teacher-forced agrees %d/%d, min margin %.4f,"
          " f32 vs f64 rel err %.3g" % (a.out, len(prompt), greedy, agree, a.n_new, min(margins), max(f32_vs_f64)),
          file=sys.stderr)
    print("text: %r" % out["full_text"], file=sys.stderr)


if __name__ == "__main__":
    main()
