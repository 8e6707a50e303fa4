#!/usr/bin/env python3
"""Turn the logits that llama.cpp's perplexity tool saved into a small committed fixture.

`llama-perplexity ... --kl-divergence-base FILE` writes, as plain data:
  "_logits_" | int32 n_ctx | int32 n_vocab | int32 n_chunk | int32 tokens[n_chunk * n_ctx]
  then per chunk, per scored position (n_ctx - 1 - n_ctx/2 of them, positions n_ctx/2 .. n_ctx-2)
  one row of nv = 2*((n_vocab+1)/2) + 4 uint16: two float32 (scale, min_log_prob) followed by
  n_vocab uint16 q, where log p = scale*q + min_log_prob. Logits more than 16 below the row's
  largest are clamped to q = 0: for those the stored value is only an upper bound.

That is ~100 KB per position; the fixture keeps, per scored position, the K most probable tokens
(clamped entries left out, padded with id -1) with llama.cpp's log-probabilities exactly as it
stored them, and the remaining tail mass 1 - sum(p_topK) (true probabilities: min_log_prob already
subtracts the full log-sum-exp). Writes DIR/logits.npz and DIR/meta.json (llama.cpp's printed
perplexity per chunk, read from its log, and the provenance given on the command line).

Not run by tests or CI (it needs the llama.cpp output); tests/fixtures/llamacpp/README.md has the
commands. Standard library and numpy only.
"""
import argparse
import json
import os
import re

import numpy as np

from gen_real_reference import sha256_file


def read_kld_base(path):
    """(n_ctx, n_vocab, tokens [n_chunk, n_ctx], scale/min [rows, 2], q [rows, n_vocab])."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"_logits_":
        raise SystemExit(f"{path}: not a llama.cpp --kl-divergence-base file (no _logits_ magic)")
    n_ctx, n_vocab, n_chunk = (int(x) for x in np.frombuffer(data, "<i4", 3, 8))
    tokens = np.frombuffer(data, "<i4", n_chunk * n_ctx, 20).reshape(n_chunk, n_ctx)
    off = 20 + 4 * n_chunk * n_ctx
    nv = 2 * ((n_vocab + 1) // 2) + 4
    rows = n_chunk * (n_ctx - 1 - n_ctx // 2)
    if len(data) != off + 2 * rows * nv:
        raise SystemExit(f"{path}: {len(data)} bytes, expected {off + 2 * rows * nv} for {n_chunk} chunks")
    table = np.frombuffer(data, "<u2", rows * nv, off).reshape(rows, nv)
    scale_min = table[:, :4].copy().view("<f4")
    return n_ctx, n_vocab, tokens, scale_min, table[:, 4:4 + n_vocab]


def read_log(path):
    """llama-perplexity's running perplexity after each chunk and its final estimate."""
    text = open(path, encoding="utf-8", errors="replace").read()
    per_chunk = [float(x) for x in re.findall(r"\[\d+\](\d+\.\d+),", text)]
    final = re.search(r"Final estimate: PPL = (\d+\.\d+) \+/- (\d+\.\d+)", text)
    if not per_chunk or not final:
        raise SystemExit(f"{path}: no perplexity figures found")
    return per_chunk, float(final.group(1)), float(final.group(2))


def top_k(q, scale_min, k):
    """Per row: the k largest unclamped entries (id, log p), sorted; -1 / -inf past the last."""
    rows = q.shape[0]
    ids = np.full((rows, k), -1, np.int32)
    logp = np.full((rows, k), -np.inf, np.float32)
    for r in range(rows):
        cand = np.flatnonzero(q[r])
        order = cand[np.lexsort((cand, -q[r, cand].astype(np.int64)))][:k]
        ids[r, :len(order)] = order
        logp[r, :len(order)] = q[r, order].astype(np.float32) * scale_min[r, 0] + scale_min[r, 1]
    return ids, logp


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kld_base", help="the file llama-perplexity --kl-divergence-base wrote")
    ap.add_argument("log", help="llama-perplexity's output (stdout and stderr)")
    ap.add_argument("out_dir")
    ap.add_argument("--k", type=int, default=64, help="tokens kept per position (default 64)")
    ap.add_argument("--bos", type=int, default=-1,
                    help="BOS id llama.cpp wrote over each chunk's first token (when the model adds BOS)")
    ap.add_argument("--model", required=True, help="the GGUF file llama.cpp ran")
    ap.add_argument("--text", required=True, help="the text file llama.cpp ran on")
    ap.add_argument("--llamacpp", required=True, help="llama.cpp's commit and where it came from")
    ap.add_argument("--command", required=True, help="the llama-perplexity command line")
    a = ap.parse_args()

    n_ctx, n_vocab, tokens, scale_min, q = read_kld_base(a.kld_base)
    chunks = tokens.copy()
    if a.bos >= 0:
        chunks[:, 0] = a.bos
    ids, logp = top_k(q, scale_min, a.k)
    tail = np.maximum(0.0, 1.0 - np.exp(logp.astype(np.float64)).sum(axis=1)).astype(np.float32)
    per_chunk, ppl, ppl_err = read_log(a.log)

    os.makedirs(a.out_dir, exist_ok=True)
    np.savez_compressed(os.path.join(a.out_dir, "logits.npz"), chunks=chunks, top_ids=ids, top_logp=logp,
                        tail=tail)
    meta = {
        "llamacpp": a.llamacpp,
        "command": a.command,
        "model": os.path.basename(a.model),
        "model_sha256": sha256_file(a.model),
        "text": os.path.basename(a.text),
        "text_sha256": sha256_file(a.text),
        "n_ctx": n_ctx,
        "n_vocab": n_vocab,
        "n_chunks": int(tokens.shape[0]),
        "first_scored": n_ctx // 2,
        "k": a.k,
        "ppl_per_chunk": per_chunk,
        "ppl": ppl,
        "ppl_err": ppl_err,
        "tail_mean": float(tail.mean()),
        "tail_max": float(tail.max()),
    }
    with open(os.path.join(a.out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps({k: meta[k] for k in ("n_ctx", "n_chunks", "k", "ppl", "tail_mean", "tail_max")}))


if __name__ == "__main__":
    main()
