#!/usr/bin/env python3
"""Writes a Hugging Face model directory with random weights and the exact shapes of a real
model, for benchmarks (the numbers are meaningless; the bytes moved are real).

    .venv/bin/python tools/make-random-model.py --shape r1-distill-qwen-1.5b --dtype bf16 OUT_DIR

Only numpy is needed. Values are small random numbers (|x| < 0.05) so activations stay finite.
"""
import argparse
import json
import pathlib
import struct

import numpy as np

SHAPES = {
    # MODELS.md §1.2 (config of deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B)
    "r1-distill-qwen-1.5b": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=1536,
                                 intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=131072,
                                 rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                                 hidden_act="silu", use_sliding_window=False, bias=True),
    "r1-distill-qwen-7b": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=3584,
                               intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                               num_key_value_heads=4, vocab_size=152064, max_position_embeddings=131072,
                               rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                               hidden_act="silu", use_sliding_window=False, bias=True),
}

SHAPES["deepseek-v2-lite"] = dict(
    # MODELS.md §1.3 (DeepSeek-V2-Lite); --layers cuts the depth so it fits in memory
    architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2", hidden_size=2048, intermediate_size=10944,
    num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16, vocab_size=102400,
    max_position_embeddings=163840, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
    hidden_act="silu", q_lora_rank=None, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
    v_head_dim=128, n_routed_experts=64, num_experts_per_tok=6, n_shared_experts=2, moe_intermediate_size=1408,
    first_k_dense_replace=1, moe_layer_freq=1, n_group=1, topk_group=1, topk_method="greedy",
    scoring_func="softmax", norm_topk_prob=False, routed_scaling_factor=1.0,
    rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                  "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707}, bias=False)

DTYPES = {"bf16": ("BF16", 2), "f16": ("F16", 2), "f32": ("F32", 4)}


def tensors(cfg):
    if cfg["architectures"][0].startswith("Deepseek"):
        yield from deepseek_tensors(cfg)
        return
    E, F, H, KV = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = E // H
    yield "model.embed_tokens.weight", (cfg["vocab_size"], E)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (E,)
        yield p + "self_attn.q_proj.weight", (H * D, E)
        yield p + "self_attn.k_proj.weight", (KV * D, E)
        yield p + "self_attn.v_proj.weight", (KV * D, E)
        if cfg.get("bias"):
            yield p + "self_attn.q_proj.bias", (H * D,)
            yield p + "self_attn.k_proj.bias", (KV * D,)
            yield p + "self_attn.v_proj.bias", (KV * D,)
        yield p + "self_attn.o_proj.weight", (E, H * D)
        yield p + "post_attention_layernorm.weight", (E,)
        yield p + "mlp.gate_proj.weight", (F, E)
        yield p + "mlp.up_proj.weight", (F, E)
        yield p + "mlp.down_proj.weight", (E, F)
    yield "model.norm.weight", (E,)
    yield "lm_head.weight", (cfg["vocab_size"], E)


def deepseek_tensors(cfg):
    E, H = cfg["hidden_size"], cfg["num_attention_heads"]
    dn, dr, dv, dc = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    ff, X = cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    yield "model.embed_tokens.weight", (cfg["vocab_size"], E)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (E,)
        yield p + "self_attn.q_proj.weight", (H * (dn + dr), E)
        yield p + "self_attn.kv_a_proj_with_mqa.weight", (dc + dr, E)
        yield p + "self_attn.kv_a_layernorm.weight", (dc,)
        yield p + "self_attn.kv_b_proj.weight", (H * (dn + dv), dc)
        yield p + "self_attn.o_proj.weight", (E, H * dv)
        yield p + "post_attention_layernorm.weight", (E,)
        if i < cfg["first_k_dense_replace"]:
            F = cfg["intermediate_size"]
            yield p + "mlp.gate_proj.weight", (F, E)
            yield p + "mlp.up_proj.weight", (F, E)
            yield p + "mlp.down_proj.weight", (E, F)
            continue
        yield p + "mlp.gate.weight", (X, E)
        for e in range(X):
            yield p + f"mlp.experts.{e}.gate_proj.weight", (ff, E)
            yield p + f"mlp.experts.{e}.up_proj.weight", (ff, E)
            yield p + f"mlp.experts.{e}.down_proj.weight", (E, ff)
        S = cfg["n_shared_experts"] * ff
        yield p + "mlp.shared_experts.gate_proj.weight", (S, E)
        yield p + "mlp.shared_experts.up_proj.weight", (S, E)
        yield p + "mlp.shared_experts.down_proj.weight", (E, S)
    yield "model.norm.weight", (E,)
    yield "lm_head.weight", (cfg["vocab_size"], E)


def random_values(rng, shape, dtype, is_norm):
    n = int(np.prod(shape))
    vals = np.ones(n, np.float32) if is_norm else (rng.random(n, dtype=np.float32) - 0.5) * 0.1
    if dtype == "f32":
        return vals.astype("<f4").tobytes()
    if dtype == "f16":
        return vals.astype("<f2").tobytes()
    return (vals.view(np.uint32) >> 16).astype("<u2").tobytes()  # bf16 by truncation


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, help="override num_hidden_layers (fewer layers, same layer shapes)")
    ap.add_argument("out", type=pathlib.Path)
    args = ap.parse_args()
    cfg = dict(SHAPES[args.shape])
    has_bias = cfg.pop("bias")
    if args.layers:
        cfg["num_hidden_layers"] = args.layers
    cfg["torch_dtype"] = {"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[args.dtype]
    args.out.mkdir(parents=True, exist_ok=True)
    st_dtype, size = DTYPES[args.dtype]
    header, offset = {}, 0
    specs = list(tensors(dict(cfg, bias=has_bias)))
    for name, shape in specs:
        n = int(np.prod(shape)) * size
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(args.seed)
    with open(args.out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for name, shape in specs:
            f.write(random_values(rng, shape, args.dtype, name.endswith("norm.weight") or name.endswith("layernorm.weight")))
    (args.out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    print(f"{args.out}: {len(specs)} tensors, {offset / 1e9:.2f} GB of {st_dtype}")


if __name__ == "__main__":
    main()
