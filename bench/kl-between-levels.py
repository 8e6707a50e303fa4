#!/usr/bin/env python3
"""How far two runs of *our own* engine drift apart when only the float summation order changes:
the AVX-512 and the AVX2 kernels quantize activations by the same rule to the same bytes, but sum
in a different order, so a value that lands near a rounding boundary can round the other way,
and that difference then shifts the rounding of later layers. KL between the two on the text
that tests/fixtures/llamacpp was made from, at the positions llama-perplexity scores, next to
each against the exact (DSINFER_ACT=f32) path:

    .venv/bin/python bench/kl-between-levels.py "$(tools/fetch-models smollm2)" smollm2
    .venv/bin/python bench/kl-between-levels.py "$(tools/fetch-models qwen2.5-coder-0.5b)" qwen2.5-coder-0.5b

The second argument names the fixture directory whose token chunks are used. Needs AVX-512."""
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def log_probs(model, ids, env):
    out = subprocess.run([str(ROOT / "build" / "dsinfer"), "logits", "-m", model, "--prompt-ids",
                          ",".join(map(str, ids)), "-t", "2", "-o", "-"],
                         env=dict(os.environ, **env), capture_output=True, check=True).stdout
    x = np.frombuffer(out, dtype=np.float32).reshape(len(ids), -1).astype(np.float64)
    x -= x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def main():
    model, fixture = sys.argv[1], sys.argv[2]
    with np.load(ROOT / "tests" / "fixtures" / "llamacpp" / fixture / "logits.npz") as z:
        chunks = z["chunks"]
    half = chunks.shape[1] // 2
    runs = {name: np.concatenate([log_probs(model, list(c), env)[half:-1] for c in chunks])
            for name, env in (("avx512", {"DSINFER_CPU": "avx512"}), ("avx2", {"DSINFER_CPU": "avx2"}),
                              ("exact", {"DSINFER_ACT": "f32"}))}

    def compare(a, b):
        kl = float((np.exp(runs[a]) * (runs[a] - runs[b])).sum(-1).mean())
        top1 = float((runs[a].argmax(-1) == runs[b].argmax(-1)).mean())
        return f"KL({a} ‖ {b}) {kl:.2e}, top-1 agreement {100 * top1:.2f} %"

    print(f"{fixture}: {len(runs['exact'])} positions")
    for a, b in (("avx512", "avx2"), ("exact", "avx512"), ("exact", "avx2")):
        print("  " + compare(a, b))


if __name__ == "__main__":
    main()
