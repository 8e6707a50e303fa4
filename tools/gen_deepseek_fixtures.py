#!/usr/bin/env python3
"""Generate reference fixtures for dsinfer's DeepSeek-V2 / V2-Lite / V3 (MLA + MoE) tests.

Tiny random-weight models are built with Hugging Face transformers' native
DeepseekV2ForCausalLM / DeepseekV3ForCausalLM, saved with save_pretrained
(safetensors + config.json + generation_config.json), and run through transformers
(f32, eager attention) -- patched where transformers departs from DeepSeek's reference
code (github deepseek-ai/DeepSeek-V3 inference/model.py) -- to record greedy ids,
per-step margins and teacher-forced logits.  Every seed is rejected unless the greedy
margins AND every MoE routing decision (top-k experts, kept groups) win by > 1e-3.

Also written: an FP8 (e4m3, 128x128 block scales) copy of the V3 model, GGUF copies in
llama.cpp's deepseek2 layout (old attn_kv_b and new attn_k_b/attn_v_b), and negative
controls.  An independent float64 numpy forward pass with DeepSeek-reference semantics
(expanded and absorbed MLA) checks the HF numbers and every GGUF file.

Run with the pinned environment from tools/requirements-gen-deepseek.txt:

    ~/.cache/dsinfer/genvenv-ds/bin/python tools/gen_deepseek_fixtures.py --out tests/fixtures

Deterministic: fixed seeds, single-threaded torch; a rerun rewrites identical files
(given the pinned versions on an x86-64 CPU).  README.md is regenerated from ref.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shutil
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

import gguf
import safetensors
import safetensors.torch
import transformers
from transformers import (DeepseekV2Config, DeepseekV2ForCausalLM, DeepseekV3Config,
                          DeepseekV3ForCausalLM, GenerationConfig)

PROMPT = [0, 37, 412, 5, 289, 90, 333, 17]    # starts with BOS = 0 (V3 ids: bos 0, eos 1)
BOS, EOS = 0, 1
N_NEW = 24
N_POS = len(PROMPT) + N_NEW                    # 32
MARGIN_MIN = 1e-3        # greedy: reject a seed if a top1-top2 margin <= this ...
MARGIN_STEPS = 20        # ... within the first 20 generated steps
ROUTE_MARGIN_MIN = 1e-3  # routing: every token's k-th vs (k+1)-th expert score, and the
                         # last kept vs first dropped group score, must differ by more
MIN_DISTINCT = 8
NEG_CONTROL_MIN = 1e-2   # a negative control must move the logits by more than this (rel)
NORM_W_RANGE = (0.5, 1.5)
MAT_STD = 0.15
MAX_SEED_TRIES = 4000
FP8_MAX = 448.0
FP8_BLOCK = 128

# --------------------------------------------------------------------------------------
# model specs
# --------------------------------------------------------------------------------------
def yarn(mscale, orig=64):
    # Released form (MODELS.md 1.3) with original_max_position_embeddings scaled down from
    # 4096 to 64 so that YaRN changes the rope frequencies of 8-dim rope heads (pairs 1..3)
    # and hence the logits at positions 0..31; factor 40 = max_position_embeddings / orig.
    return {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": mscale,
            "mscale_all_dim": mscale, "original_max_position_embeddings": orig, "type": "yarn"}


COMMON = dict(vocab_size=512, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
              v_head_dim=16, first_k_dense_replace=1, moe_layer_freq=1,
              max_position_embeddings=2560, rope_theta=10000, rms_norm_eps=1e-6,
              hidden_act="silu", tie_word_embeddings=False, bos_token_id=BOS, eos_token_id=EOS,
              attention_bias=False, attention_dropout=0.0, initializer_range=MAT_STD,
              use_cache=True, ep_size=1)

SPECS = [
    dict(name="v2_lite", arch="v2", seed0=10000, gate_std=0.1,
         cfg=dict(COMMON, intermediate_size=64, moe_intermediate_size=8, q_lora_rank=None,
                  n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=2,
                  scoring_func="softmax", topk_method="greedy", n_group=1, topk_group=1,
                  norm_topk_prob=False, routed_scaling_factor=1.0, aux_loss_alpha=0.001,
                  seq_aux=True, pretraining_tp=1, rope_scaling=yarn(0.707))),
    dict(name="v2", arch="v2", seed0=20000, gate_std=0.12,
         cfg=dict(COMMON, intermediate_size=64, moe_intermediate_size=8, q_lora_rank=32,
                  n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=2,
                  scoring_func="softmax", topk_method="group_limited_greedy", n_group=4,
                  topk_group=2, norm_topk_prob=False, routed_scaling_factor=16.0,
                  aux_loss_alpha=0.001, seq_aux=True, pretraining_tp=1,
                  rope_scaling=yarn(0.707))),
    dict(name="v3", arch="v3", seed0=30000, gate_std=0.2, bias_mean=-0.5, bias_std=0.3,
         fp8=True,
         cfg=dict(COMMON, intermediate_size=136, moe_intermediate_size=8, q_lora_rank=32,
                  n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1,
                  scoring_func="sigmoid", topk_method="noaux_tc", n_group=4, topk_group=2,
                  norm_topk_prob=True, routed_scaling_factor=2.5, num_nextn_predict_layers=0,
                  rope_scaling=yarn(1.0))),
]
# Sizes are kept small for the 8 MB fixture budget (each f32 model is stored 3 times:
# safetensors + 2 GGUFs).  v3's dense intermediate_size 136 > 128 gives its FP8 copy
# 2-block weights with an 8-row / 8-column partial edge block.
# gate_std: router weights ~ N(0, gate_std) (the input is RMS-normed, |x| ~ 8): softmax
# routers need a moderate spread or the k-th and (k+1)-th probabilities nearly tie.
# V3 e_score_correction_bias ~ N(bias_mean, bias_std): mostly negative, so some tokens'
# k-th kept biased score is <= 0 -- exactly where transformers' native router (masked
# groups filled with 0.0) and DeepSeek's reference (-inf) choose different experts.

ARCH = {"v2": (DeepseekV2Config, DeepseekV2ForCausalLM),
        "v3": (DeepseekV3Config, DeepseekV3ForCausalLM)}

# config.json key sets of the released checkpoints (auto_map omitted: no remote code here)
RELEASED_KEYS = {
    # DeepSeek-V2-Lite-Chat / V2 config.json
    "v2": ["architectures", "attention_bias", "attention_dropout", "aux_loss_alpha",
           "bos_token_id", "eos_token_id", "ep_size", "first_k_dense_replace", "hidden_act",
           "hidden_size", "initializer_range", "intermediate_size", "kv_lora_rank",
           "max_position_embeddings", "model_type", "moe_intermediate_size", "moe_layer_freq",
           "n_group", "n_routed_experts", "n_shared_experts", "norm_topk_prob",
           "num_attention_heads", "num_experts_per_tok", "num_hidden_layers",
           "num_key_value_heads", "pretraining_tp", "q_lora_rank", "qk_nope_head_dim",
           "qk_rope_head_dim", "rms_norm_eps", "rope_scaling", "rope_theta",
           "routed_scaling_factor", "scoring_func", "seq_aux", "tie_word_embeddings",
           "topk_group", "topk_method", "torch_dtype", "transformers_version", "use_cache",
           "v_head_dim", "vocab_size"],
    # DeepSeek-V3 config.json
    "v3": ["architectures", "attention_bias", "attention_dropout", "bos_token_id",
           "eos_token_id", "ep_size", "first_k_dense_replace", "hidden_act", "hidden_size",
           "initializer_range", "intermediate_size", "kv_lora_rank", "max_position_embeddings",
           "model_type", "moe_intermediate_size", "moe_layer_freq", "n_group",
           "n_routed_experts", "n_shared_experts", "norm_topk_prob", "num_attention_heads",
           "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads",
           "num_nextn_predict_layers", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
           "rms_norm_eps", "rope_scaling", "rope_theta", "routed_scaling_factor",
           "scoring_func", "tie_word_embeddings", "topk_group", "topk_method", "torch_dtype",
           "transformers_version", "use_cache", "v_head_dim", "vocab_size"],
}
FP8_QCFG = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
            "weight_block_size": [128, 128]}


def log(*a):
    print(*a, flush=True)


def write_f32(path, arr):
    np.ascontiguousarray(np.asarray(arr, dtype="<f4")).tofile(path)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def rel_diff(a, ref):
    return float(np.abs(np.asarray(a) - ref).max() / np.abs(ref).max())


def yarn_mscale(factor, m):
    return 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0


def ref_softmax_scale(cfg):
    """DeepSeek reference: (qk_nope + qk_rope)^-1/2 * mscale^2, mscale from mscale_all_dim."""
    rs = cfg["rope_scaling"] if isinstance(cfg, dict) else cfg.rope_scaling
    get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
    m = yarn_mscale(float(rs["factor"]), float(rs["mscale_all_dim"]))
    return (get("qk_nope_head_dim") + get("qk_rope_head_dim")) ** -0.5 * m * m


# --------------------------------------------------------------------------------------
# model construction
# --------------------------------------------------------------------------------------
def make_config(spec, **override):
    cfg_cls, _ = ARCH[spec["arch"]]
    kw = copy.deepcopy(spec["cfg"])
    kw.update(override)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    return cfg


def init_weights(model, spec, seed):
    """Every parameter from one generator in sorted-name order: matrices ~ N(0, 0.15),
    router weights ~ N(0, gate_std), RMSNorm weights ~ U(0.5, 1.5); then (V3) every
    e_score_correction_bias ~ N(bias_mean, bias_std) from the same generator."""
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name.endswith("norm.weight"):
                lo, hi = NORM_W_RANGE
                p.copy_(lo + (hi - lo) * torch.rand(p.shape, generator=g))
            elif name.endswith("mlp.gate.weight"):
                p.copy_(spec["gate_std"] * torch.randn(p.shape, generator=g))
            else:
                p.copy_(MAT_STD * torch.randn(p.shape, generator=g))
        bufs = dict(model.named_buffers())
        for name in sorted(bufs):
            if name.endswith("e_score_correction_bias"):
                b = bufs[name]
                b.copy_(spec["bias_mean"] + spec["bias_std"] * torch.randn(b.shape, generator=g))


def new_model(spec, **cfg_override):
    _, cls = ARCH[spec["arch"]]
    return cls(make_config(spec, **cfg_override)).eval()


def model_with_state(spec, state, patch=True, **cfg_override):
    m = new_model(spec, **cfg_override)
    m.load_state_dict(state, strict=True)
    if patch:
        apply_reference_patches(m, spec)
    return m


def moe_layers(model):
    return [l for l in model.model.layers if hasattr(l.mlp, "gate")]


# --------------------------------------------------------------------------------------
# the patches: make transformers follow DeepSeek's reference (inference/model.py)
# --------------------------------------------------------------------------------------
def _v3_topk_indices_ref(self, scores):
    """transformers 4.57.1 DeepseekV3TopkRouter.get_topk_indices with ONE change: experts
    of dropped groups are masked with -inf (DeepSeek's reference Gate.forward,
    `scores.masked_fill_(mask, float("-inf"))`) instead of 0.0."""
    scores_for_choice = scores.view(-1, self.n_routed_experts) + self.e_score_correction_bias.unsqueeze(0)
    group_scores = (scores_for_choice.view(-1, self.n_group, self.n_routed_experts // self.n_group)
                    .topk(2, dim=-1)[0].sum(dim=-1))
    group_idx = torch.topk(group_scores, k=self.topk_group, dim=-1, sorted=False)[1]
    group_mask = torch.zeros_like(group_scores)
    group_mask.scatter_(1, group_idx, 1)
    score_mask = (group_mask.unsqueeze(-1)
                  .expand(-1, self.n_group, self.n_routed_experts // self.n_group)
                  .reshape(-1, self.n_routed_experts))
    scores_for_choice = scores_for_choice.masked_fill(~score_mask.bool(), float("-inf"))
    return torch.topk(scores_for_choice, k=self.top_k, dim=-1, sorted=False)[1]


def apply_reference_patches(model, spec, scale=True, v3_mask="-inf"):
    """V2 (native port): softmax scale qk_head_dim^-1/2 -> qk_head_dim^-1/2 * mscale^2.
    V3: router masking 0.0 -> -inf.  Everything else already matches the reference
    (checked here: the V3 scale, the cos/sin attention factor == 1)."""
    cfg = model.config
    want = ref_softmax_scale(cfg)
    native = (cfg.qk_nope_head_dim + cfg.qk_rope_head_dim) ** -0.5
    assert model.model.rotary_emb.attention_scaling == 1.0   # mscale == mscale_all_dim
    for layer in model.model.layers:
        attn = layer.self_attn
        if spec["arch"] == "v2":
            assert math.isclose(attn.scaling, native, rel_tol=1e-12), attn.scaling
            if scale:
                attn.scaling = want
        else:
            assert math.isclose(attn.scaling, want, rel_tol=1e-12), (attn.scaling, want)
            if not scale:
                attn.scaling = native
    if spec["arch"] == "v3" and v3_mask == "-inf":
        for layer in moe_layers(model):
            layer.mlp.gate.get_topk_indices = types.MethodType(_v3_topk_indices_ref, layer.mlp.gate)
    return model


# --------------------------------------------------------------------------------------
# routing: capture the router inputs with forward hooks, recompute the scores
# --------------------------------------------------------------------------------------
class RouteCapture:
    """Forward hooks on every MoE gate module: records the router input and the
    (indices, weights) transformers chose."""

    def __init__(self, model):
        self.calls = []
        self.handles = []
        for li, layer in enumerate(model.model.layers):
            if hasattr(layer.mlp, "gate"):
                self.handles.append(layer.mlp.gate.register_forward_hook(self._hook(li)))

    def _hook(self, li):
        def f(mod, inp, out):
            x = inp[0].detach().reshape(-1, inp[0].shape[-1])
            idx, w = out
            self.calls.append((li, mod, x.clone(), idx.detach().clone(), w.detach().clone()))
        return f

    def clear(self):
        self.calls = []

    def remove(self):
        for h in self.handles:
            h.remove()


def route_scores(spec, mod, x):
    """Selection scores in f32 exactly as the router computes them."""
    logits = F.linear(x.float(), mod.weight.float())
    if spec["cfg"]["scoring_func"] == "softmax":
        return logits.softmax(dim=-1, dtype=torch.float32), None
    s = logits.sigmoid()
    return s, s + mod.e_score_correction_bias.float().unsqueeze(0)


def route_analysis(spec, mod, x):
    """Per token: DeepSeek-reference selection, the expert margin (k-th minus (k+1)-th
    selection score among the candidates) and the group margin (last kept minus first
    dropped group score)."""
    c = spec["cfg"]
    E, k = c["n_routed_experts"], c["num_experts_per_tok"]
    G, TG = c["n_group"], c["topk_group"]
    s, biased = route_scores(spec, mod, x)
    sel = s if biased is None else biased
    n = sel.shape[0]
    gmargin = torch.full((n,), float("inf"))
    kept_groups = None
    cand = sel
    if G > 1:
        sg = sel.view(n, G, E // G)
        gs = sg.amax(-1) if biased is None else sg.topk(2, dim=-1)[0].sum(-1)
        gsort = gs.sort(-1, descending=True)
        gmargin = gsort.values[:, TG - 1] - gsort.values[:, TG]
        kept_groups = gsort.indices[:, :TG].sort(-1).values
        drop = torch.ones(n, G, dtype=torch.bool).scatter_(1, gsort.indices[:, :TG], False)
        cand = sg.masked_fill(drop.unsqueeze(-1), float("-inf")).flatten(1)
    csort = cand.sort(-1, descending=True)
    emargin = csort.values[:, k - 1] - csort.values[:, k]
    chosen = csort.indices[:, :k]
    out = {"emargin": emargin, "gmargin": gmargin, "chosen": chosen, "kept_groups": kept_groups,
           "kth_sel_score": csort.values[:, k - 1], "scores": s}
    if G > 1:
        # candidates' smallest selection score: > 0 means filling dropped groups with 0.0
        # (transformers) selects exactly what -inf (reference) selects
        out["min_kept_score"] = cand.masked_fill(torch.isinf(cand), float("inf")).amin(-1)
    return out


def check_routing(spec, cap, check_hf=True):
    """Margins over every captured call; returns a summary and per-layer details.
    With check_hf, asserts transformers chose the same experts as the reference
    selection and the same weights as the reference formula."""
    c = spec["cfg"]
    res = {"min_expert_margin": float("inf"), "min_group_margin": float("inf"), "layers": {}}
    for li, mod, x, idx, w in cap.calls:
        a = route_analysis(spec, mod, x)
        em, gm = float(a["emargin"].min()), float(a["gmargin"].min())
        res["min_expert_margin"] = min(res["min_expert_margin"], em)
        res["min_group_margin"] = min(res["min_group_margin"], gm)
        lay = {"min_expert_margin": em, "min_group_margin": gm}
        if "min_kept_score" in a:
            lay["min_candidate_score"] = float(a["min_kept_score"].min())
            lay["tokens_kth_selected_score_le_0"] = int((a["kth_sel_score"] <= 0).sum())
        if check_hf:
            hf_sets = idx.sort(-1).values
            ref_sets = a["chosen"].sort(-1).values
            lay["hf_matches_reference_choice"] = bool(torch.equal(hf_sets, ref_sets))
            s = a["scores"]
            wref = s.gather(1, a["chosen"])
            if c["norm_topk_prob"]:
                wref = wref / (wref.sum(-1, keepdim=True) + 1e-20)
            wref = wref * c["routed_scaling_factor"]
            # compare weights matched by expert id
            hf_w = torch.zeros_like(s).scatter(1, idx, w.float())
            rf_w = torch.zeros_like(s).scatter(1, a["chosen"], wref)
            lay["max_weight_diff_vs_reference"] = float((hf_w - rf_w).abs().max())
        lay["_analysis"] = a
        res["layers"][li] = lay
    return res


def routing_ok(r):
    return (r["min_expert_margin"] > ROUTE_MARGIN_MIN and r["min_group_margin"] > ROUTE_MARGIN_MIN)


# --------------------------------------------------------------------------------------
# greedy / teacher forcing
# --------------------------------------------------------------------------------------
@torch.no_grad()
def greedy(model, spec, prompt=PROMPT, n_new=N_NEW, early_reject=True):
    """Greedy argmax with full recompute per step.  With early_reject, the routing of every
    token is checked at every step and the run stops at the first near-tie."""
    cap = RouteCapture(model)
    try:
        ids, margins = list(prompt), []
        for _ in range(n_new):
            cap.clear()
            logits = model(torch.tensor([ids]), use_cache=False).logits[0, -1].float()
            if early_reject:
                r = check_routing(spec, cap, check_hf=False)
                if not routing_ok(r):
                    return ids, margins, (f"routing margin expert {r['min_expert_margin']:.2e} "
                                          f"group {r['min_group_margin']:.2e} at len {len(ids)}")
            top2 = torch.topk(logits, 2)
            ids.append(int(top2.indices[0]))
            margins.append(float(top2.values[0] - top2.values[1]))
            if early_reject and len(margins) <= MARGIN_STEPS and margins[-1] <= MARGIN_MIN:
                return ids, margins, f"margin {margins[-1]:.2e} at step {len(margins) - 1}"
        return ids, margins, None
    finally:
        cap.remove()


@torch.no_grad()
def teacher_forced(model, ids, spec=None, with_routing=False):
    cap = RouteCapture(model) if with_routing else None
    try:
        out = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy().copy()
        if with_routing:
            return out, check_routing(spec, cap)
        return out
    finally:
        if cap:
            cap.remove()


def seed_problem(ids, margins):
    bad = [i for i, m in enumerate(margins[:MARGIN_STEPS]) if m <= MARGIN_MIN]
    if bad:
        return f"margin {margins[bad[0]]:.2e} at step {bad[0]}"
    gen = ids[len(PROMPT):]
    if len(set(gen)) < MIN_DISTINCT:
        return f"only {len(set(gen))} distinct generated tokens"
    if len(set(gen[-8:])) == 1:
        return "collapsed into one repeated token"
    return None


# --------------------------------------------------------------------------------------
# FP8 e4m3 with 128x128 block scales (DeepSeek-V3 recipe)
# --------------------------------------------------------------------------------------
def fp8_quantize(w):
    """Per 128x128 block (edge blocks partial): s = max|W| / 448, q = e4m3(W / s) (round to
    nearest even, torch's float8_e4m3fn cast), weight_scale_inv = s (f32).  Returns
    (q [out,in] float8_e4m3fn, scale_inv [ceil(out/128), ceil(in/128)] f32, dequantized f32)."""
    w = w.float()
    out_f, in_f = w.shape
    bo, bi = -(-out_f // FP8_BLOCK), -(-in_f // FP8_BLOCK)
    q = torch.empty(out_f, in_f, dtype=torch.float8_e4m3fn)
    s = torch.empty(bo, bi, dtype=torch.float32)
    for i in range(bo):
        for j in range(bi):
            r0, c0 = i * FP8_BLOCK, j * FP8_BLOCK
            blk = w[r0:r0 + FP8_BLOCK, c0:c0 + FP8_BLOCK]
            sc = blk.abs().max() / FP8_MAX
            if float(sc) == 0.0:
                sc = torch.tensor(1.0)
            s[i, j] = sc
            q[r0:r0 + FP8_BLOCK, c0:c0 + FP8_BLOCK] = torch.clamp(blk / sc, -FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q, s, fp8_dequantize(q, s)


def fp8_dequantize(q, s):
    """W[r][c] = float(q[r][c]) * scale_inv[r // 128][c // 128]."""
    out_f, in_f = q.shape
    full = s.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)[:out_f, :in_f]
    return q.float() * full


def e4m3_decode_table():
    """Bit-level decode of all 256 e4m3fn codes (1 sign, 4 exponent bits, bias 7, 3 mantissa
    bits, no inf, 0x7F/0xFF NaN) -- checked against torch's cast."""
    t = np.zeros(256, dtype=np.float64)
    for b in range(256):
        sgn = -1.0 if b & 0x80 else 1.0
        e, m = (b >> 3) & 0xF, b & 7
        if e == 0xF and m == 7:
            t[b] = np.nan
        elif e == 0:
            t[b] = sgn * (m / 8.0) * 2.0 ** -6
        else:
            t[b] = sgn * (1 + m / 8.0) * 2.0 ** (e - 7)
    return t


FP8_RE = re.compile(r"^model\.layers\.\d+\.(self_attn\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|"
                    r"kv_b_proj|o_proj)|mlp\.(experts\.\d+\.|shared_experts\.)?(gate|up|down)_proj)\.weight$")


def is_fp8_target(name):
    """Attention projections, dense MLP, routed and shared experts; NOT the router
    (mlp.gate.weight), norms, embeddings, lm_head, e_score_correction_bias."""
    return FP8_RE.match(name) is not None


def fp8_state(state):
    """Returns (tensors for the FP8 safetensors file, dequantized f32 state dict)."""
    file_t, deq = {}, {}
    for k in sorted(state):
        v = state[k]
        if is_fp8_target(k):
            q, s, d = fp8_quantize(v)
            file_t[k] = q
            file_t[k + "_scale_inv"] = s
            deq[k] = d
        else:
            file_t[k] = v.float().contiguous()
            deq[k] = v.float().clone()
    return file_t, deq


# --------------------------------------------------------------------------------------
# independent float64 numpy forward pass with DeepSeek-reference semantics
# --------------------------------------------------------------------------------------
def yarn_inv_freq(dim, base, factor, orig, beta_fast, beta_slow):
    """DeepSeek reference precompute_freqs_cis (float64)."""
    def corr(r):
        return dim * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(base))
    low = max(math.floor(corr(beta_fast)), 0)
    high = min(math.ceil(corr(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    smooth = 1 - ramp
    freqs = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if factor > 1:
        freqs = freqs / factor * (1 - smooth) + freqs * smooth
    return freqs, (low, high)


def np_rms(x, g, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g


def np_silu(x):
    return x / (1 + np.exp(-x))


def np_route(hp, L, h):
    """DeepSeek reference Gate.forward: returns (indices [T,k], weights [T,k])."""
    logits = h @ L["router"].T
    if hp["score"] == "softmax":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        s = e / e.sum(-1, keepdims=True)
    else:
        s = 1 / (1 + np.exp(-logits))
    sel = s + L["bias"] if L.get("bias") is not None else s.copy()
    T, E = sel.shape
    G, TG, k = hp["n_group"], hp["topk_group"], hp["top_k"]
    if G > 1:
        sg = sel.reshape(T, G, E // G)
        gs = sg.max(-1) if L.get("bias") is None else np.sort(sg, -1)[..., -2:].sum(-1)
        keep = np.argsort(-gs, -1, kind="stable")[:, :TG]
        mask = np.ones((T, G), dtype=bool)
        np.put_along_axis(mask, keep, False, 1)
        sel = np.where(mask[..., None], -np.inf, sg).reshape(T, E)
    idx = np.argsort(-sel, -1, kind="stable")[:, :k]
    w = np.take_along_axis(s, idx, 1)
    if hp["norm_topk"]:
        w = w / w.sum(-1, keepdims=True)
    return idx, w * hp["route_scale"]


def np_forward(hp, W, ids, absorbed=False):
    """hp: hyperparameters; W: neutral weights (see hf_to_neutral / gguf_to_neutral).
    absorbed=False: per-head K/V from kv_b (naive); True: attention in the 32-dim latent
    space with k_b / v_b (what the MLA cache path computes)."""
    T = len(ids)
    H, dn, dr, dv, dc = hp["H"], hp["dn"], hp["dr"], hp["dv"], hp["dc"]
    eps = hp["eps"]
    inv, _ = yarn_inv_freq(dr, hp["theta"], hp["factor"], hp["orig"], hp["beta_fast"], hp["beta_slow"])
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]        # [T, dr/2]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(v):                      # v [T, ..., dr]: adjacent pairs (2j, 2j+1), freq j
        c = cos.reshape(T, *([1] * (v.ndim - 2)), dr // 2)
        s_ = sin.reshape(T, *([1] * (v.ndim - 2)), dr // 2)
        a, b = v[..., 0::2], v[..., 1::2]
        y = np.empty_like(v)
        y[..., 0::2], y[..., 1::2] = a * c - b * s_, a * s_ + b * c
        return y

    scale = (dn + dr) ** -0.5 * hp["mscale2"]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    x = W["embed"][ids]
    for i, L in enumerate(W["layers"]):
        h = np_rms(x, L["attn_norm"], eps)
        if "q" in L:
            q = h @ L["q"].T
        else:
            q = np_rms(h @ L["q_a"].T, L["q_a_norm"], 1e-6) @ L["q_b"].T
        q = q.reshape(T, H, dn + dr)
        q_nope, q_pe = q[..., :dn], rope(q[..., dn:])
        kv = h @ L["kv_a"].T
        c = np_rms(kv[:, :dc], L["kv_a_norm"], 1e-6)
        k_pe = rope(kv[:, dc:])
        if absorbed:
            q_lat = np.einsum("thd,hdc->thc", q_nope, L["k_b"])          # k_b [H, dn, dc]
            sc = np.einsum("thc,sc->hts", q_lat, c) + np.einsum("thr,sr->hts", q_pe, k_pe)
        else:
            kvb = (c @ L["kv_b"].T).reshape(T, H, dn + dv)
            k_nope, v = kvb[..., :dn], kvb[..., dn:]
            sc = np.einsum("thd,shd->hts", q_nope, k_nope) + np.einsum("thr,sr->hts", q_pe, k_pe)
        sc = sc * scale + mask
        p = np.exp(sc - sc.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        if absorbed:
            o_lat = np.einsum("hts,sc->thc", p, c)
            o = np.einsum("thc,hdc->thd", o_lat, L["v_b"])                 # v_b [H, dv, dc]
        else:
            o = np.einsum("hts,shd->thd", p, v)
        x = x + o.reshape(T, H * dv) @ L["o"].T
        h = np_rms(x, L["ffn_norm"], eps)
        if "gate" in L:
            x = x + (np_silu(h @ L["gate"].T) * (h @ L["up"].T)) @ L["down"].T
        else:
            idx, w = np_route(hp, L, h)
            y = np.zeros_like(h)
            for t in range(T):
                for j in range(idx.shape[1]):
                    e = idx[t, j]
                    a = np_silu(L["exp_gate"][e] @ h[t]) * (L["exp_up"][e] @ h[t])
                    y[t] += w[t, j] * (L["exp_down"][e] @ a)
            sh = (np_silu(h @ L["sh_gate"].T) * (h @ L["sh_up"].T)) @ L["sh_down"].T
            x = x + y + sh
    return np_rms(x, W["final_norm"], eps) @ W["head"].T


def hp_from_config(c):
    rs = c["rope_scaling"]
    return dict(H=c["num_attention_heads"], dn=c["qk_nope_head_dim"], dr=c["qk_rope_head_dim"],
                dv=c["v_head_dim"], dc=c["kv_lora_rank"], eps=c["rms_norm_eps"],
                theta=float(c["rope_theta"]), factor=float(rs["factor"]),
                orig=rs["original_max_position_embeddings"], beta_fast=rs["beta_fast"],
                beta_slow=rs["beta_slow"],
                mscale2=yarn_mscale(float(rs["factor"]), rs["mscale_all_dim"]) ** 2,
                score=c["scoring_func"], n_group=c["n_group"], topk_group=c["topk_group"],
                top_k=c["num_experts_per_tok"], norm_topk=c["norm_topk_prob"],
                route_scale=c["routed_scaling_factor"])


def hf_to_neutral(state, c, with_split=True):
    a = {k: v.double().numpy() for k, v in state.items()}
    H, dn, dv, dc = c["num_attention_heads"], c["qk_nope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
    W = {"embed": a["model.embed_tokens.weight"], "final_norm": a["model.norm.weight"],
         "head": a["lm_head.weight"], "layers": []}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        L = {"attn_norm": a[p + "input_layernorm.weight"], "ffn_norm": a[p + "post_attention_layernorm.weight"],
             "kv_a": a[p + "self_attn.kv_a_proj_with_mqa.weight"], "kv_a_norm": a[p + "self_attn.kv_a_layernorm.weight"],
             "kv_b": a[p + "self_attn.kv_b_proj.weight"], "o": a[p + "self_attn.o_proj.weight"]}
        if p + "self_attn.q_proj.weight" in a:
            L["q"] = a[p + "self_attn.q_proj.weight"]
        else:
            L.update(q_a=a[p + "self_attn.q_a_proj.weight"], q_a_norm=a[p + "self_attn.q_a_layernorm.weight"],
                     q_b=a[p + "self_attn.q_b_proj.weight"])
        if with_split:
            kvb = L["kv_b"].reshape(H, dn + dv, dc)
            L["k_b"], L["v_b"] = kvb[:, :dn], kvb[:, dn:]
        if p + "mlp.gate.weight" in a:
            E = c["n_routed_experts"]
            L["router"] = a[p + "mlp.gate.weight"]
            L["bias"] = a.get(p + "mlp.gate.e_score_correction_bias")
            for nm, key in (("gate_proj", "exp_gate"), ("up_proj", "exp_up"), ("down_proj", "exp_down")):
                L[key] = np.stack([a[f"{p}mlp.experts.{e}.{nm}.weight"] for e in range(E)])
            L["sh_gate"] = a[p + "mlp.shared_experts.gate_proj.weight"]
            L["sh_up"] = a[p + "mlp.shared_experts.up_proj.weight"]
            L["sh_down"] = a[p + "mlp.shared_experts.down_proj.weight"]
        else:
            L.update(gate=a[p + "mlp.gate_proj.weight"], up=a[p + "mlp.up_proj.weight"],
                     down=a[p + "mlp.down_proj.weight"])
        W["layers"].append(L)
    return W


# --------------------------------------------------------------------------------------
# GGUF (llama.cpp convert_hf_to_gguf.py DeepseekV2Model, arch "deepseek2")
# --------------------------------------------------------------------------------------
ARCH_G = "deepseek2"
ATTN_MAP = [("self_attn.q_proj.weight", "attn_q.weight"),
            ("self_attn.q_a_proj.weight", "attn_q_a.weight"),
            ("self_attn.q_a_layernorm.weight", "attn_q_a_norm.weight"),
            ("self_attn.q_b_proj.weight", "attn_q_b.weight"),
            ("self_attn.kv_a_proj_with_mqa.weight", "attn_kv_a_mqa.weight"),
            ("self_attn.kv_a_layernorm.weight", "attn_kv_a_norm.weight")]
DENSE_MAP = [("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"),
             ("mlp.down_proj.weight", "ffn_down.weight")]
MOE_MAP = [("mlp.gate.weight", "ffn_gate_inp.weight"),
           ("mlp.gate.e_score_correction_bias", "exp_probs_b.bias"),
           ("mlp.shared_experts.gate_proj.weight", "ffn_gate_shexp.weight"),
           ("mlp.shared_experts.up_proj.weight", "ffn_up_shexp.weight"),
           ("mlp.shared_experts.down_proj.weight", "ffn_down_shexp.weight")]


def write_gguf(path, c, state, layout, model_name):
    """layout 'old': blk.N.attn_kv_b.weight = kv_b_proj as is, head_count_kv = heads,
    key_length / value_length = per-head q/k and v widths (pre-MLA-cache converters).
    layout 'new': kv_b_proj split per head into attn_k_b ([H, kv_lora, nope]: the K rows,
    transposed) and attn_v_b ([H, v, kv_lora]), head_count_kv = 1, key_length =
    kv_lora + rope, value_length = kv_lora, key_length_mla / value_length_mla = per-head
    widths (current converters).  All tensors F32.  Returns the list of (name, shape)."""
    H, dn, dr, dv, dc = (c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"],
                         c["v_head_dim"], c["kv_lora_rank"])
    rs = c["rope_scaling"]
    w = gguf.GGUFWriter(path, ARCH_G)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(model_name)
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_block_count(c["num_hidden_layers"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(H if layout == "old" else 1)
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["rms_norm_eps"]))
    w.add_expert_count(c["n_routed_experts"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    w.add_uint32(f"{ARCH_G}.expert_group_count", c["n_group"])
    w.add_uint32(f"{ARCH_G}.expert_group_used_count", c["topk_group"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_leading_dense_block_count(c["first_k_dense_replace"])
    w.add_vocab_size(c["vocab_size"])
    if c.get("q_lora_rank") is not None:
        w.add_q_lora_rank(c["q_lora_rank"])
    w.add_kv_lora_rank(dc)
    if layout == "old":
        w.add_key_length(dn + dr)
        w.add_value_length(dv)
    else:
        w.add_key_length(dc + dr)
        w.add_value_length(dc)
        w.add_key_length_mla(dn + dr)
        w.add_value_length_mla(dv)
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_expert_shared_count(c["n_shared_experts"])
    w.add_expert_weights_scale(float(c["routed_scaling_factor"]))
    w.add_expert_weights_norm(bool(c["norm_topk_prob"]))
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID if c["scoring_func"] == "sigmoid"
                             else gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_rope_dimension_count(dr)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(float(rs["factor"]))
    w.add_rope_scaling_orig_ctx_len(rs["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_log_mul(0.1 * rs["mscale_all_dim"])
    w.add_bos_token_id(BOS)
    w.add_eos_token_id(EOS)

    names = []

    def add(name, arr):
        arr = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        w.add_tensor(name, arr)
        names.append((name, list(arr.shape)))

    a = {k: v.float().numpy() for k, v in state.items()}
    add("token_embd.weight", a["model.embed_tokens.weight"])
    for i in range(c["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        add(b + "attn_norm.weight", a[p + "input_layernorm.weight"])
        for hf, gg in ATTN_MAP:
            if p + hf in a:
                add(b + gg, a[p + hf])
        kvb = a[p + "self_attn.kv_b_proj.weight"]
        if layout == "old":
            add(b + "attn_kv_b.weight", kvb)
        else:
            kv3 = kvb.reshape(H, dn + dv, dc)
            add(b + "attn_k_b.weight", kv3[:, :dn].transpose(0, 2, 1))     # [H, dc, dn]
            add(b + "attn_v_b.weight", kv3[:, dn:])                         # [H, dv, dc]
        add(b + "attn_output.weight", a[p + "self_attn.o_proj.weight"])
        add(b + "ffn_norm.weight", a[p + "post_attention_layernorm.weight"])
        if p + "mlp.gate.weight" in a:
            for hf, gg in MOE_MAP:
                if p + hf in a:
                    add(b + gg, a[p + hf])
            E = c["n_routed_experts"]
            for nm, gg in (("down_proj", "ffn_down_exps"), ("gate_proj", "ffn_gate_exps"),
                           ("up_proj", "ffn_up_exps")):
                add(b + gg + ".weight", np.stack([a[f"{p}mlp.experts.{e}.{nm}.weight"] for e in range(E)]))
        else:
            for hf, gg in DENSE_MAP:
                add(b + gg, a[p + hf])
    add("output_norm.weight", a["model.norm.weight"])
    add("output.weight", a["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return names


def gguf_kv(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode()
    return v.tolist()[0]


def gguf_to_neutral(path):
    """Everything from the GGUF: hyperparameters from keys (beta_fast/slow are not stored:
    llama.cpp's defaults 32 / 1), weights from tensors.  Old layout -> naive (kv_b);
    new layout -> absorbed (k_b / v_b)."""
    r = gguf.GGUFReader(path)
    assert gguf_kv(r, "general.architecture") == ARCH_G
    kv = lambda k, d=None: gguf_kv(r, f"{ARCH_G}.{k}", d)
    T = {}
    for t in r.tensors:
        assert gguf.GGMLQuantizationType(t.tensor_type) == gguf.GGMLQuantizationType.F32
        T[t.name] = np.array(t.data).astype(np.float64).reshape([int(n) for n in reversed(t.shape.tolist())])
    H, dr, dc = kv("attention.head_count"), kv("rope.dimension_count"), kv("attention.kv_lora_rank")
    new = kv("attention.key_length_mla") is not None
    dqk = kv("attention.key_length_mla") if new else kv("attention.key_length")
    dv = kv("attention.value_length_mla") if new else kv("attention.value_length")
    if new:
        assert kv("attention.head_count_kv") == 1 and kv("attention.key_length") == dc + dr
        assert kv("attention.value_length") == dc
    factor, ylm = kv("rope.scaling.factor"), kv("rope.scaling.yarn_log_multiplier")
    assert gguf_kv(r, f"{ARCH_G}.rope.scaling.type") == "yarn"
    gating = kv("expert_gating_func", 1)
    hp = dict(H=H, dn=dqk - dr, dr=dr, dv=dv, dc=dc, eps=kv("attention.layer_norm_rms_epsilon"),
              theta=kv("rope.freq_base"), factor=factor, orig=kv("rope.scaling.original_context_length"),
              beta_fast=32, beta_slow=1, mscale2=(1 + ylm * math.log(factor)) ** 2,
              score="sigmoid" if gating == 2 else "softmax", n_group=kv("expert_group_count", 1),
              topk_group=kv("expert_group_used_count", 1), top_k=kv("expert_used_count"),
              norm_topk=bool(kv("expert_weights_norm", False)),
              route_scale=kv("expert_weights_scale", 1.0))
    W = {"embed": T["token_embd.weight"], "final_norm": T["output_norm.weight"],
         "head": T["output.weight"], "layers": []}
    nl, nd = kv("block_count"), kv("leading_dense_block_count")
    for i in range(nl):
        b = f"blk.{i}."
        L = {"attn_norm": T[b + "attn_norm.weight"], "ffn_norm": T[b + "ffn_norm.weight"],
             "kv_a": T[b + "attn_kv_a_mqa.weight"], "kv_a_norm": T[b + "attn_kv_a_norm.weight"],
             "o": T[b + "attn_output.weight"]}
        if b + "attn_q.weight" in T:
            L["q"] = T[b + "attn_q.weight"]
        else:
            L.update(q_a=T[b + "attn_q_a.weight"], q_a_norm=T[b + "attn_q_a_norm.weight"],
                     q_b=T[b + "attn_q_b.weight"])
        if new:
            L["k_b"] = T[b + "attn_k_b.weight"].transpose(0, 2, 1)          # -> [H, dn, dc]
            L["v_b"] = T[b + "attn_v_b.weight"]
            assert b + "attn_kv_b.weight" not in T
        else:
            L["kv_b"] = T[b + "attn_kv_b.weight"]
        if i >= nd:
            L.update(router=T[b + "ffn_gate_inp.weight"], bias=T.get(b + "exp_probs_b.bias"),
                     exp_gate=T[b + "ffn_gate_exps.weight"], exp_up=T[b + "ffn_up_exps.weight"],
                     exp_down=T[b + "ffn_down_exps.weight"], sh_gate=T[b + "ffn_gate_shexp.weight"],
                     sh_up=T[b + "ffn_up_shexp.weight"], sh_down=T[b + "ffn_down_shexp.weight"])
        else:
            L.update(gate=T[b + "ffn_gate.weight"], up=T[b + "ffn_up.weight"], down=T[b + "ffn_down.weight"])
        W["layers"].append(L)
    return hp, W, new


def gguf_keys(path):
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.parts[f.data[0]] if f.data else None
        if f.types and f.types[0] == gguf.GGUFValueType.STRING:
            out[k] = bytes(v).decode()
        elif v is not None:
            val = v.tolist()[0]
            out[k] = round(val, 7) if isinstance(val, float) else val
    return out


# --------------------------------------------------------------------------------------
# config.json in the released form
# --------------------------------------------------------------------------------------
def post_edit_config(path, spec, extra=None):
    """Rewrite save_pretrained's config.json with exactly the released checkpoints' keys
    (MODELS.md 1.3) in save_pretrained's formatting (indent 2, sorted keys).  Returns the
    list of edits."""
    with open(path) as f:
        saved = json.load(f)
    keys = list(RELEASED_KEYS[spec["arch"]])
    out, edits = {}, []
    for k in keys:
        if k == "torch_dtype":
            v = saved.get("torch_dtype", saved.get("dtype"))
            if "torch_dtype" not in saved:
                edits.append({"key": "dtype", "written": saved.get("dtype"), "now": "renamed to torch_dtype",
                              "why": "4.57 writes the dtype as \"dtype\"; released files say \"torch_dtype\""})
        elif k == "rope_scaling":
            v = spec["cfg"]["rope_scaling"]
            if saved["rope_scaling"] != v or any(type(saved["rope_scaling"].get(x)) is not type(y) for x, y in v.items()):
                floats = any(type(saved["rope_scaling"].get(x)) is not type(y) for x, y in v.items())
                edits.append({"key": k, "written": saved["rope_scaling"], "now": v,
                              "why": "4.57 copies type into rope_type" + (" and writes factor / beta_fast / "
                                     "beta_slow as floats" if floats else "")})
        elif k == "rope_theta":
            v = spec["cfg"]["rope_theta"]
            if saved[k] != v or type(saved[k]) is not type(v):
                edits.append({"key": k, "written": saved[k], "now": v, "why": "released files write the int 10000"})
        else:
            assert k in saved, (spec["name"], k)
            v = saved[k]
        out[k] = v
    for k in sorted(set(saved) - set(keys) - {"dtype"}):
        why = "not in the released config.json"
        if k == "head_dim":
            why += "; transformers sets head_dim = qk_rope_head_dim, misleading for a reader"
        edits.append({"key": k, "written": saved[k], "now": "(removed)", "why": why})
    if extra:
        for k, v in extra.items():
            out[k] = v
            edits.append({"key": k, "written": None, "now": v, "why": "FP8 checkpoint"})
    with open(path, "w") as f:
        f.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return edits, out


def write_generation_config(d):
    GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, do_sample=False).save_pretrained(d)


# --------------------------------------------------------------------------------------
# one model
# --------------------------------------------------------------------------------------
def rope_perm(dr):
    """y = x[perm] turns adjacent-pair rotation on y into rotate-half (NeoX) rotation on x."""
    return [v for j in range(dr // 2) for v in (j, j + dr // 2)]


def neox_layout_state(state, c):
    """Permute the rope rows of q and kv_a so that transformers' adjacent-pair V2 rope acts
    like rotate-half on the original rows (the wrong layout for these checkpoints)."""
    H, dn, dr, dc = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["kv_lora_rank"]
    perm = torch.tensor(rope_perm(dr))
    st = {k: v.clone() for k, v in state.items()}
    for k in st:
        if k.endswith(("self_attn.q_proj.weight", "self_attn.q_b_proj.weight")):
            w = st[k].view(H, dn + dr, -1)
            w[:, dn:] = w[:, dn:][:, perm]
        elif k.endswith("self_attn.kv_a_proj_with_mqa.weight"):
            st[k][dc:] = st[k][dc:][perm]
    return st


def negative_controls(spec, state, ids, logits):
    """Each control runs transformers with one semantic changed; all must move the logits
    by > 1e-2 of max|logit| (except the proven-equal ones, recorded with their numbers)."""
    c = spec["cfg"]
    out = []

    def run(kind, desc, m, expect_diff=True):
        nl = teacher_forced(m, ids)
        rel = rel_diff(nl, logits)
        out.append({"kind": kind, "description": desc, "rel_to_max_abs_logit": rel,
                    "max_abs_diff": float(np.abs(nl - logits).max()), "expect_diff": expect_diff})
        if expect_diff:
            assert rel > NEG_CONTROL_MIN, (spec["name"], kind, rel)
        log(f"  control {kind}: rel {rel:.4g}")
        return rel

    # 1. softmax scale without mscale^2 (= the unpatched native V2 port)
    m = model_with_state(spec, state, patch=False)
    apply_reference_patches(m, spec, scale=False)
    run("no_mscale2", "softmax scale (nope+rope)^-1/2 without the mscale^2 factor"
        + (" (= transformers' unpatched DeepseekV2Attention)" if spec["arch"] == "v2" else ""), m)
    # 2. YaRN frequencies replaced by plain rope (same theta), mscale^2 kept
    m = model_with_state(spec, state)
    dr = c["qk_rope_head_dim"]
    plain = 1.0 / (float(c["rope_theta"]) ** (torch.arange(0, dr, 2, dtype=torch.float32) / dr))
    m.model.rotary_emb.inv_freq = plain
    m.model.rotary_emb.original_inv_freq = plain
    run("no_yarn_freqs", "plain rope frequencies instead of YaRN's (mscale^2 kept)", m)
    # 3. rope layout: rotate-half on the raw HF rows instead of adjacent pairs
    if spec["arch"] == "v3":
        m = model_with_state(spec, state, rope_interleave=False)
    else:
        m = model_with_state(spec, neox_layout_state(state, c))
    run("rope_rotate_half", "rotate-half (NeoX) pairs (j, j+4) on the HF q_pe/k_pe rows "
        "instead of adjacent pairs (2j, 2j+1)", m)
    # 4. routing semantics
    if c["n_group"] > 1:
        m = model_with_state(spec, state)
        for l in moe_layers(m):
            g = l.mlp.gate
            if spec["arch"] == "v2":
                g.topk_method = "greedy"
            else:
                g.n_group, g.topk_group = 1, 1
        run("no_group_limit", "top-k over all experts, n_group / topk_group ignored", m)
    m = model_with_state(spec, state)
    for l in moe_layers(m):
        l.mlp.gate.routed_scaling_factor = 1.0
    if c["routed_scaling_factor"] != 1.0:
        run("no_routed_scaling", "routed_scaling_factor ignored (1.0)", m)
    if spec["arch"] == "v3":
        m = model_with_state(spec, state, patch=False)       # transformers' native router
        apply_reference_patches(m, spec, v3_mask="zero")
        run("group_mask_zero", "dropped groups masked with 0.0 (transformers' native "
            "DeepseekV3TopkRouter, DeepSeek's Dec-2024 reference) instead of -inf", m)
        m = model_with_state(spec, state)
        for l in moe_layers(m):
            l.mlp.gate.e_score_correction_bias.zero_()
        run("no_correction_bias", "e_score_correction_bias ignored", m)
        m = model_with_state(spec, state)
        for l in moe_layers(m):
            l.mlp.gate.norm_topk_prob = False
        run("no_norm_topk_prob", "weights not renormalized over the selected experts", m)
    return out


def hf_checks(spec, state, ids, logits, cfg_json):
    """The independent numpy forward (reference semantics) on the same weights, naive and
    absorbed MLA, must reproduce the (patched) transformers logits."""
    hp = hp_from_config(cfg_json)
    W = hf_to_neutral(state, cfg_json)
    naive = np_forward(hp, W, ids, absorbed=False)
    absorbed = np_forward(hp, W, ids, absorbed=True)
    r1, r2, r3 = rel_diff(naive, logits), rel_diff(absorbed, logits), rel_diff(absorbed, naive)
    assert r1 < 1e-4 and r2 < 1e-4 and r3 < 1e-9, (r1, r2, r3)
    return {"numpy_reference_naive_rel": r1, "numpy_reference_absorbed_rel": r2,
            "absorbed_vs_naive_rel_f64": r3}


def finite(v):
    return None if isinstance(v, float) and math.isinf(v) else v


def routing_summary(r):
    """JSON-able routing record (per MoE layer: chosen experts per position); a group
    margin of null means no group selection (n_group 1)."""
    out = {"min_expert_margin": r["min_expert_margin"], "min_group_margin": finite(r["min_group_margin"]),
           "layers": {}}
    for li, lay in r["layers"].items():
        a = lay["_analysis"]
        s = a["scores"]
        rec = {k: finite(v) for k, v in lay.items() if not k.startswith("_")}
        ch = a["chosen"]
        rec["experts"] = ch.tolist()     # per position, in decreasing selection score
        rec["selection_scores"] = [[round(float(v), 6) for v in row] for row in s.gather(1, ch)]
        if a["kept_groups"] is not None:
            rec["kept_groups"] = a["kept_groups"].tolist()
        out["layers"][str(li)] = rec
    return out


def fix_routing_scores(spec, model, rsum):
    """selection_scores = the biased scores for V3 (what top-k compares), softmax otherwise."""
    if spec["arch"] != "v3":
        for lay in rsum["layers"].values():
            lay["selection_scores_are"] = "softmax probabilities"
        return
    for li, lay in rsum["layers"].items():
        b = model.model.layers[int(li)].mlp.gate.e_score_correction_bias
        lay["selection_scores"] = [[round(v + float(b[e]), 6) for v, e in zip(row, es)]
                                   for row, es in zip(lay["selection_scores"], lay["experts"])]
        lay["selection_scores_are"] = "sigmoid + e_score_correction_bias"


def pick_seed(spec, also_fp8=False):
    model = new_model(spec)
    apply_reference_patches(model, spec)
    for seed in range(spec["seed0"], spec["seed0"] + MAX_SEED_TRIES):
        init_weights(model, spec, seed)
        ids, margins, why = greedy(model, spec)
        if why is None:
            why = seed_problem(ids, margins)
        if why is None:
            _, r = teacher_forced(model, ids, spec, with_routing=True)
            if not routing_ok(r):
                why = f"teacher-forced routing margins {r['min_expert_margin']:.2e} / {r['min_group_margin']:.2e}"
        if why is None and spec["arch"] == "v3":
            n_le0 = sum(l["tokens_kth_selected_score_le_0"] for l in r["layers"].values())
            if n_le0 == 0:
                why = "no token where 0.0-masking differs from -inf"
        if why is None and also_fp8:
            state = {k: v.clone() for k, v in model.state_dict().items()}
            _, deq = fp8_state(state)
            m8 = model_with_state(spec, deq)
            ids8, margins8, w8 = greedy(m8, spec)
            w8 = w8 or seed_problem(ids8, margins8)
            if w8 is None:
                _, r8 = teacher_forced(m8, ids8, spec, with_routing=True)
                if not routing_ok(r8):
                    w8 = "routing"
            if w8 is not None:
                why = f"fp8: {w8}"
        if why is None:
            return seed, model, ids, margins
        if (seed - spec["seed0"]) % 200 == 0 or "routing" not in why:
            log(f"  seed {seed} rejected: {why}")
    raise SystemExit(f"{spec['name']}: no acceptable seed in {MAX_SEED_TRIES} tries")


def reference_run(spec, model, d, name):
    """Greedy + teacher-forced logits + routing on a (patched) model; asserts the seed rules."""
    ids, margins, why = greedy(model, spec, early_reject=False)
    assert seed_problem(ids, margins) is None, seed_problem(ids, margins)
    logits, r = teacher_forced(model, ids, spec, with_routing=True)
    assert routing_ok(r), (r["min_expert_margin"], r["min_group_margin"])
    for li, lay in r["layers"].items():
        assert lay["hf_matches_reference_choice"], (name, li)
        assert lay["max_weight_diff_vs_reference"] < 1e-5, (name, li, lay["max_weight_diff_vs_reference"])
    assert logits.shape == (N_POS, spec["cfg"]["vocab_size"])
    assert logits[len(PROMPT) - 1:N_POS - 1].argmax(-1).tolist() == ids[len(PROMPT):]
    return ids, margins, logits, r


def gen_model(spec, root, summary):
    name = spec["name"]
    log(f"== {name}")
    d = os.path.join(root, "deepseek", name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    seed, model, ids0, margins0 = pick_seed(spec, also_fp8=spec.get("fp8", False))
    log(f"  seed {seed}: ids {ids0[len(PROMPT):]}")

    # ---- save the HF checkpoint, config.json in the released form --------------------
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    save_model = new_model(spec)
    save_model.load_state_dict(state0, strict=True)
    save_model.generation_config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, do_sample=False)
    save_model.save_pretrained(d, safe_serialization=True)
    edits, cfg_json = post_edit_config(os.path.join(d, "config.json"), spec)

    # ---- reload from disk: the reference is computed on what was written -------------
    _, cls = ARCH[spec["arch"]]
    ref_model = cls.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
    for k, v in state0.items():
        assert torch.equal(ref_model.state_dict()[k], v), k
    assert ref_model.config.rope_scaling["factor"] == 40.0
    if spec["arch"] == "v3":
        assert ref_model.config.rope_interleave is True
    apply_reference_patches(ref_model, spec)
    ids, margins, logits, r = reference_run(spec, ref_model, d, name)
    assert ids == ids0 and np.allclose(margins, margins0, atol=1e-5)
    write_f32(os.path.join(d, "logits.f32"), logits)
    state = {k: v.clone() for k, v in ref_model.state_dict().items()}

    ref = {"prompt_ids": PROMPT, "ids": ids, "margins": margins, "n_positions": N_POS,
           "vocab_size": spec["cfg"]["vocab_size"], "dtype": "float32",
           "transformers": transformers.__version__, "torch": torch.__version__,
           "gguf_py": gguf_version(), "safetensors": safetensors.__version__,
           "numpy": np.__version__, "seed": seed,
           "logits_file": "logits.f32",
           "logits_layout": "little-endian f32 [n_positions, vocab_size] row-major; row p = logits after token ids[p]",
           "max_abs_logit": float(np.abs(logits).max()), "logit_std": float(logits.std()),
           "init": {"matrices_std": MAT_STD, "router_std": spec["gate_std"],
                    "norm_weights_uniform": list(NORM_W_RANGE),
                    "e_score_correction_bias_normal": ([spec["bias_mean"], spec["bias_std"]]
                                                       if spec["arch"] == "v3" else None)},
           "softmax_scale": ref_softmax_scale(cfg_json),
           "softmax_scale_formula": "(qk_nope_head_dim + qk_rope_head_dim)^-0.5 * (0.1 * mscale_all_dim * ln(factor) + 1)^2",
           "yarn": yarn_record(cfg_json),
           "config_post_edits": edits}
    rs = routing_summary(r)
    fix_routing_scores(spec, ref_model, rs)
    ref["routing"] = rs
    ref["checks"] = hf_checks(spec, state, ids, logits, cfg_json)
    log(f"  numpy reference: naive {ref['checks']['numpy_reference_naive_rel']:.2e}, "
        f"absorbed {ref['checks']['numpy_reference_absorbed_rel']:.2e}")
    if spec["arch"] == "v2" and spec["cfg"]["n_group"] > 1:
        mins = [l["min_candidate_score"] for l in r["layers"].values()]
        assert min(mins) > 0
        ref["checks"]["v2_group_mask_zero_equals_minus_inf"] = {
            "min_softmax_score_among_kept_group_experts": min(mins),
            "why": "softmax scores are > 0, so filling dropped groups with 0.0 (transformers) "
                   "never beats a kept expert: same choice as -inf (reference); the numpy "
                   "reference forward (-inf) reproduces the unpatched router's logits above"}

    # ---- negative controls -----------------------------------------------------------
    ref["negative_controls"] = negative_controls(spec, state, ids, logits)

    # ---- GGUF --------------------------------------------------------------------------
    ref["gguf"] = {}
    for layout in ("old", "new"):
        fn = f"model-{layout}.gguf"
        p = os.path.join(d, fn)
        tensors = write_gguf(p, cfg_json, state, layout, f"{name}-{layout}")
        hp, W, is_new = gguf_to_neutral(p)
        assert is_new == (layout == "new")
        g_logits = np_forward(hp, W, ids, absorbed=is_new)
        rel = rel_diff(g_logits, logits)
        assert rel < 1e-4, (fn, rel)
        ref["gguf"][layout] = {"file": fn, "reference": "logits.f32 (identical weights)",
                               "numpy_forward": "absorbed MLA (attn_k_b/attn_v_b)" if is_new else "naive MLA (attn_kv_b)",
                               "numpy_rel_diff": rel, "keys": gguf_keys(p),
                               "tensors": [t for t in tensors if t[0].startswith(("blk.0.", "blk.1.")) or not t[0].startswith("blk.")]}
        log(f"  {fn}: numpy ({'absorbed' if is_new else 'naive'}) vs ref rel {rel:.2e}")

    write_json(os.path.join(d, "ref.json"), ref)
    summary[name] = {"seed": seed, "min_margin_first20": min(margins[:MARGIN_STEPS]),
                     "routing": [r["min_expert_margin"], finite(r["min_group_margin"])]}

    if spec.get("fp8"):
        gen_fp8(spec, root, state, cfg_json, logits, ids, seed, summary)


def yarn_record(c):
    rs = c["rope_scaling"]
    inv, (low, high) = yarn_inv_freq(c["qk_rope_head_dim"], float(c["rope_theta"]), float(rs["factor"]),
                                      rs["original_max_position_embeddings"], rs["beta_fast"], rs["beta_slow"])
    plain = 1.0 / float(c["rope_theta"]) ** (np.arange(0, c["qk_rope_head_dim"], 2) / c["qk_rope_head_dim"])
    return {"inv_freq": [float(v) for v in inv], "plain_inv_freq": [float(v) for v in plain],
            "low": low, "high": high,
            "mscale": yarn_mscale(float(rs["factor"]), rs["mscale_all_dim"]),
            "cos_sin_factor": yarn_mscale(float(rs["factor"]), rs["mscale"]) / yarn_mscale(float(rs["factor"]), rs["mscale_all_dim"])}


def gen_fp8(spec, root, state, cfg_json, logits_f32, ids_f32, seed, summary):
    name = spec["name"] + "_fp8"
    log(f"== {name}")
    d = os.path.join(root, "deepseek", name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    file_t, deq = fp8_state(state)
    safetensors.torch.save_file(file_t, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    # config: model c's released-form config + quantization_config
    src = os.path.join(root, "deepseek", spec["name"], "config.json")
    shutil.copy(src, os.path.join(d, "config.json"))
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    cj["quantization_config"] = FP8_QCFG
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(json.dumps(cj, indent=2, sort_keys=True) + "\n")
    write_generation_config(d)

    # read the file back and dequantize independently (bit-level e4m3 table)
    table = e4m3_decode_table()
    n_q, n_blocks, scale_shapes = 0, 0, {}
    with safetensors.safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        back = {}
        for k in keys:
            if k.endswith("_scale_inv"):
                continue
            t = f.get_tensor(k)
            if t.dtype == torch.float8_e4m3fn:
                s = f.get_tensor(k + "_scale_inv")
                assert s.dtype == torch.float32
                assert list(s.shape) == [-(-t.shape[0] // 128), -(-t.shape[1] // 128)]
                codes = t.view(torch.uint8).numpy()
                vals = table[codes]
                assert np.array_equal(vals, t.float().numpy().astype(np.float64))
                full = np.repeat(np.repeat(s.numpy().astype(np.float64), 128, 0), 128, 1)[:t.shape[0], :t.shape[1]]
                back[k] = torch.from_numpy((vals * full).astype(np.float32))
                n_q += 1
                n_blocks += s.numel()
                scale_shapes[k] = [list(t.shape), list(s.shape)]
            else:
                back[k] = t
    for k in deq:
        assert torch.equal(back[k], deq[k]), k
    c = spec["cfg"]
    n_moe = c["num_hidden_layers"] - c["first_k_dense_replace"]
    n_attn = 5 if c["q_lora_rank"] is not None else 4
    want = (c["num_hidden_layers"] * n_attn + 3 * c["first_k_dense_replace"]
            + n_moe * 3 * (c["n_routed_experts"] + 1))
    assert n_q == want, (n_q, want)
    for k in state:
        assert is_fp8_target(k) == (k in scale_shapes), k
        if ("mlp.gate." in k or "norm" in k or "embed" in k or "lm_head" in k):
            assert k not in scale_shapes, k
    assert set(back) == set(state)
    # header dtypes as stored
    with open(os.path.join(d, "model.safetensors"), "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        hdr = json.loads(fh.read(n))
    dtypes = sorted({v["dtype"] for k, v in hdr.items() if k != "__metadata__"})
    assert "F8_E4M3" in dtypes

    model = model_with_state(spec, deq)
    ids, margins, logits, r = reference_run(spec, model, d, name)
    write_f32(os.path.join(d, "logits.f32"), logits)
    ref = {"prompt_ids": PROMPT, "ids": ids, "margins": margins, "n_positions": N_POS,
           "vocab_size": spec["cfg"]["vocab_size"],
           "dtype": "F8_E4M3 (attention, dense MLP, experts, shared experts) + F32 weight_scale_inv; rest F32",
           "transformers": transformers.__version__, "torch": torch.__version__,
           "gguf_py": gguf_version(), "safetensors": safetensors.__version__, "numpy": np.__version__,
           "seed": seed, "logits_file": "logits.f32",
           "logits_layout": "little-endian f32 [n_positions, vocab_size] row-major; row p = logits after token ids[p]",
           "reference": "transformers f32 (patched as for v3) on the DEQUANTIZED weights, f32 activations",
           "max_abs_logit": float(np.abs(logits).max()), "logit_std": float(logits.std()),
           "softmax_scale": ref_softmax_scale(cfg_json),
           "fp8": {"quantized_tensors": n_q, "scale_blocks": n_blocks,
                   "safetensors_dtypes": dtypes,
                   "recipe": "per 128x128 block (edge blocks partial): s = max|W|/448 (f32), "
                             "q = float8_e4m3fn(W/s) round-to-nearest-even, weight_scale_inv = s; "
                             "dequant W = float(q) * weight_scale_inv[r//128][c//128]",
                   "shapes_weight_and_scale_inv": {k: v for k, v in sorted(scale_shapes.items())
                                                   if ".mlp.experts." not in k or ".mlp.experts.0." in k}},
           "same_greedy_ids_as_v3_f32": ids == ids_f32,
           "rel_diff_vs_v3_f32_logits_on_v3_ids": rel_diff(teacher_forced(model, ids_f32), logits_f32),
           "config_post_edits": [{"key": "quantization_config", "written": None, "now": FP8_QCFG,
                                  "why": "FP8 checkpoint (otherwise v3's config.json)"}]}
    rs = routing_summary(r)
    fix_routing_scores(spec, model, rs)
    ref["routing"] = rs
    ref["checks"] = hf_checks(spec, deq, ids, logits, cfg_json)
    # controls: the scale tensors must matter, and must be multiplied
    ctl = []
    for kind, desc, fn in (("scale_inv_ignored", "weight_scale_inv ignored (raw e4m3 values)", lambda q, s: q.float()),
                           ("scale_inv_divided", "weight divided by weight_scale_inv instead of multiplied",
                            lambda q, s: fp8_dequantize(q, 1.0 / s))):
        st = {}
        for k, v in state.items():
            if is_fp8_target(k):
                st[k] = fn(file_t[k], file_t[k + "_scale_inv"])
            else:
                st[k] = deq[k]
        nl = teacher_forced(model_with_state(spec, st), ids)
        rel = rel_diff(nl, logits) if np.isfinite(nl).all() else float("inf")
        assert rel > NEG_CONTROL_MIN, (kind, rel)
        ctl.append({"kind": kind, "description": desc, "rel_to_max_abs_logit": rel, "expect_diff": True})
        log(f"  control {kind}: rel {rel:.4g}")
    ref["negative_controls"] = ctl
    write_json(os.path.join(d, "ref.json"), ref)
    summary[name] = {"seed": seed, "min_margin_first20": min(margins[:MARGIN_STEPS]),
                     "routing": [r["min_expert_margin"], finite(r["min_group_margin"])]}


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------------------
# README (regenerated from the ref.json files so its numbers always match the data)
# --------------------------------------------------------------------------------------
README_HEAD = """# DeepSeek-V2 / V2-Lite / V3 reference fixtures (MLA + MoE + YaRN + FP8)

Generated by `tools/gen_deepseek_fixtures.py` -- do not edit by hand; this README is
rewritten by the generator from the `ref.json` files.

## How they were made

```sh
python3 -m venv ~/.cache/dsinfer/genvenv-ds
~/.cache/dsinfer/genvenv-ds/bin/pip install -r tools/requirements-gen-deepseek.txt
~/.cache/dsinfer/genvenv-ds/bin/python tools/gen_deepseek_fixtures.py --out tests/fixtures
```

Versions: {versions}.  transformers 4.57.1 is pinned because deepseek_v2 became native
only in 4.54.0 (deepseek_v3 in 4.50) and 5.x fuses the expert weights; 4.57.1..4.57.6
have byte-identical deepseek_v2 / deepseek_v3 / rope code.  CPU only,
`torch.set_num_threads(1)`, deterministic algorithms; a rerun reproduces every file byte
for byte (checked with md5sum on x86-64).

The logits are transformers' (`DeepseekV2ForCausalLM` / `DeepseekV3ForCausalLM`, f32,
`attn_implementation="eager"`, no KV cache) **patched to follow DeepSeek's reference
code** (github deepseek-ai/DeepSeek-V3 `inference/model.py`) where transformers departs
from it -- see "Where transformers departs from DeepSeek's reference" below.  An
independent float64 numpy forward pass written from the reference semantics (naive and
absorbed MLA) reproduces every `logits.f32` to ~2e-6 of max |logit|, from the
safetensors weights and from every GGUF.

## Models

Common to all: vocab 512, hidden 64, 3 layers (`first_k_dense_replace` 1: layer 0 dense,
layers 1 and 2 MoE, `moe_layer_freq` 1), 4 heads (`num_key_value_heads` 4 in config.json),
`kv_lora_rank` 32, `qk_nope_head_dim` 16, `qk_rope_head_dim` 8, `v_head_dim` 16,
`rms_norm_eps` 1e-6, `rope_theta` 10000, `max_position_embeddings` 2560, YaRN
`{{"type": "yarn", "factor": 40, "original_max_position_embeddings": 64, "beta_fast": 32,
"beta_slow": 1, "mscale": m, "mscale_all_dim": m}}`, SiLU SwiGLU, `tie_word_embeddings`
false, BOS 0 / EOS 1 (config.json and generation_config.json).
`original_max_position_embeddings` is 64 (released: 4096) so that YaRN changes the
frequencies of the 8-dim rope heads (released 64-dim heads with 4096 behave the same way
on pairs 11..22; here pairs 1..3 change) and therefore the logits at positions 0..31;
max_position_embeddings = 40 x 64 keeps transformers' factor consistency check quiet.

| dir | HF class | q_lora_rank | inter | moe_inter | routed / shared / top-k | n_group / topk_group | topk_method | scoring | norm_topk_prob | routed_scaling | mscale | seed |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
{model_rows}

`v3_fp8` is `v3`'s weights (same seed) quantized to FP8, see "FP8".

Weights: every matrix ~ N(0, 0.15); router `mlp.gate.weight` ~ N(0, router_std) (0.1 /
0.12 / 0.2 for v2_lite / v2 / v3: a softmax over 8-16 experts needs a moderate spread or
its k-th and (k+1)-th probabilities nearly tie); RMSNorm weights ~ U(0.5, 1.5); V3
`mlp.gate.e_score_correction_bias` ~ N(-0.5, 0.3) (random, non-zero, mostly negative so
that the -inf group masking matters, see below).

Files in each model dir:
- `config.json` (in the released checkpoints' form, see "config.json"),
  `generation_config.json`, `model.safetensors` (F32 for v2_lite / v2 / v3; v3_fp8: FP8
  + F32, see "FP8").
- `logits.f32`: teacher-forced logits over the 32-token sequence (prompt + 24 greedy
  tokens), raw little-endian float32, row-major `[32, 512]`; row p holds the logits after
  token `ids[p]` (so argmax of rows 7..30 = `ids[8..31]`).
- `ref.json`: `prompt_ids`, `ids`, `margins` (top1 - top2 logit at each generated step),
  `n_positions`, `vocab_size`, `dtype`, versions, `seed`, `init`, `softmax_scale`, `yarn`
  (`inv_freq` of the 4 rope pairs, YaRN's `low`/`high`, `mscale`), `routing` (per MoE layer
  and position: the chosen experts in decreasing selection score, their selection scores,
  the kept groups, the margins), `checks` (numpy reference), `negative_controls`,
  `config_post_edits`, and for a-c `gguf` (keys and tensor list of both GGUFs).
- v2_lite, v2, v3: `model-old.gguf` and `model-new.gguf`, see "GGUF".  Their reference is
  the same `logits.f32` (identical F32 weights).

Prompt `{prompt}` (starts with BOS). Greedy = plain argmax over all 512 logits for 24
steps, no EOS stop, full recompute each step.  A seed is rejected (the next one tried) if
any greedy margin <= 1e-3 within the first 20 generated steps, if the 24 generated tokens
have fewer than 8 distinct ids or end in 8 repeats, **or if any routing decision is a
near-tie**: for every token at every MoE layer (checked at every greedy step and on the
final teacher-forced pass, via forward hooks on the gate modules) the k-th and (k+1)-th
selection scores among the candidate experts, and the last kept and first dropped group
scores, must differ by > 1e-3 (selection scores: softmax probabilities for V2, sigmoid +
`e_score_correction_bias` for V3; group score: max for V2, sum of the top-2 biased scores
for V3).  One flipped expert moves the logits by O(1), so an engine with correct routing
reproduces the choices despite its own rounding.  v3 is also rejected unless some token
has its k-th selected biased score <= 0 (so -inf vs 0.0 masking matters), and unless
v3_fp8 passes the same rules on its own greedy run.

## Greedy runs

| dir | generated ids | min margin (first 20) | max abs logit | min expert margin | min group margin |
|---|---|---|---|---|---|
{greedy_rows}

## Where transformers departs from DeepSeek's reference, and what the fixtures do

1. **Softmax scale of the native V2 port (patched).** transformers'
   `DeepseekV2Attention.scaling = qk_head_dim ** -0.5` has no YaRN factor.  DeepSeek's
   reference (`MLA.softmax_scale`), the HF remote code, transformers' own
   `DeepseekV3Attention`, vLLM and llama.cpp use
   `(qk_nope_head_dim + qk_rope_head_dim)^-0.5 * m^2` with
   `m = 0.1 * mscale_all_dim * ln(factor) + 1`.  The generator sets `self_attn.scaling` to
   that value on every V2 layer (after every model construction, including the reload
   from disk).  Here: {scale_rows}.  The same scale applies in the absorbed form (it is
   based on qk_nope + qk_rope = 24, never on kv_lora + rope = 40).  V3 needs no patch
   (asserted).
2. **Masked groups in the V3 router (patched).** transformers'
   `DeepseekV3TopkRouter.get_topk_indices` fills the experts of dropped groups with 0.0
   before the final top-k; DeepSeek's current reference `Gate.forward` (and the HF remote
   code of the R1-0528 era) fills them with -inf.  (DeepSeek's first release of
   `inference/model.py`, Dec 2024, multiplied by a 0/1 mask, i.e. 0.0 like transformers.)
   They differ when fewer than top-k candidates have a biased score > 0: then 0.0-filling
   picks an expert of a dropped group.  The generator replaces `get_topk_indices` on each
   router with a copy whose only change is `masked_fill(..., float("-inf"))`.  In v3 this
   changes the choice at {v3_mask_tokens} (token, layer) pairs (v3_fp8: {v3fp8_mask_tokens}); the
   control `group_mask_zero` below shows the unpatched router's logits.
3. **Masked groups in the V2 router (not patched: provably equal).** transformers'
   `DeepseekV2MoEGate` (group_limited_greedy) also fills dropped groups with 0.0, but
   softmax scores are > 0: the smallest softmax score among kept-group experts over all
   tokens of v2 is {v2_min_cand:.3g} > 0, so 0.0 never beats a kept expert and the choice equals
   -inf masking.  The numpy reference (-inf) reproduces the unpatched router's logits.
4. **Rope layout (no patch needed).** The q_pe / k_pe rows of the HF weights are in the
   reference's order: rope pairs are ADJACENT `(x[2j], x[2j+1])`, rotated by angle
   `pos * inv_freq[j]` (`x' = (x0 cos - x1 sin, x0 sin + x1 cos)`), j = 0..3.  transformers'
   DeepseekV2 does exactly that (complex multiply of adjacent pairs, like the reference);
   DeepseekV3 with `rope_interleave=True` (the default; the key is not in released
   config.json files) first de-interleaves (evens then odds) and applies rotate-half,
   which is the same rotation with the output dims permuted identically for q and k, so
   every dot product is the same.  `rope_interleave=False` (rotate-half on the raw rows,
   pairs (j, j+4)) is WRONG for these checkpoints: control `rope_rotate_half`.
5. **cos/sin magnitude.** transformers multiplies cos/sin by `attention_factor =
   get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)` = 1.0 here (mscale ==
   mscale_all_dim, as in every released checkpoint); the reference applies no factor.
   Asserted equal to 1.
6. **YaRN frequencies** are identical in both (floor/ceil correction range on dim =
   qk_rope_head_dim, linear ramp over the dim/2 pairs).  transformers applies YaRN because
   `rope_scaling` is present; the reference only when `max_seq_len > original_seq_len`
   (true here and by default).
7. **Routing weights** match the reference formula (asserted per token < 1e-5; largest
   difference seen {max_wdiff:.1e}):
   V2 `w = softmax_k * routed_scaling_factor` (no renormalization; transformers' V2 gate
   ignores `norm_topk_prob`, false in all V2 configs); V3 `w = sigmoid_k /
   (sum_selected sigmoid + 1e-20) * routed_scaling_factor` from the UNBIASED sigmoid (the
   bias only selects).  The chosen expert sets equal the reference selection for every
   token (asserted).  Shared experts are added unscaled.

## Negative controls (asserted by the generator: rel = max|logits - ref| / max|ref| > 1e-2)

Each runs transformers on the same ids and weights with one semantic changed.

| dir | control | rel |
|---|---|---|
{neg_rows}

## Independent numpy check

float64, written from the reference semantics, on the same weights and ids (rel to max
|logit|): naive MLA (per-head K/V from `kv_b_proj`) and absorbed MLA (scores
`q_nope^T W_UK c + q_pe . k_pe` in the 32-dim latent space, output `W_UV (sum p c)`);
absorbed vs naive agree to ~1e-15 in f64.

| dir | naive vs logits.f32 | absorbed vs logits.f32 | old GGUF (naive) | new GGUF (absorbed) |
|---|---|---|---|---|
{numpy_rows}

## FP8 (`v3_fp8`)

`model.safetensors` holds, for every linear DeepSeek quantizes (MODELS.md 7: `q_a_proj`,
`q_b_proj`, `kv_a_proj_with_mqa`, `kv_b_proj`, `o_proj`, the dense `gate/up/down_proj`,
every routed expert's and the shared experts' `gate/up/down_proj`) `X.weight` as
`F8_E4M3` and `X.weight_scale_inv` as `F32` `[ceil(out/128), ceil(in/128)]`; the
embeddings, `lm_head`, all norms, the router `mlp.gate.weight` and
`e_score_correction_bias` stay F32 ({n_q} quantized tensors, {n_blocks} scale blocks).
Recipe per 128x128 block (edge blocks partial, ceil division): `s = max|W| / 448` (f32),
`q = float8_e4m3fn(W / s)` (round to nearest even), `weight_scale_inv = s`.
Dequantization: `W[r][c] = e4m3(q[r][c]) * weight_scale_inv[r / 128][c / 128]` --
MULTIPLIED despite the name.  Every weight here has fewer than 128 columns except the
dense `down_proj` `[64, 136]` (scale `[1, 2]`); the dense `gate/up_proj` `[136, 64]` have
scale `[2, 1]` (second block 8 rows), `kv_b_proj` `[128, 32]` is exactly one block.
e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; exponent 0 = subnormal
`(m/8) 2^-6`; `0x7F`/`0xFF` NaN; max 448.  The generator decodes every stored byte with a
bit-level table and checks it against torch.  config.json = v3's plus
`"quantization_config": {fp8_qcfg}` (transformers 4.57.1 would load it only through its
GPU FP8 quantizer; the generator dequantizes itself).
Reference: transformers f32 (patched as v3) on the DEQUANTIZED weights with f32
activations (no activation quantization); its own greedy run (same ids as v3: {fp8_same}); rel
diff of v3_fp8 vs v3 logits on v3's ids: {fp8_vs_f32:.4f}.

## GGUF (v2_lite, v2, v3)

Written with the `gguf` package (gguf-py {gguf_py}) the way llama.cpp's
`convert_hf_to_gguf.py` `DeepseekV2Model` does (arch `deepseek2`), all tensors F32
(`general.file_type` 0), no tokenizer vocabulary (only `tokenizer.ggml.bos_token_id` 0 /
`eos_token_id` 1), no MTP layers (there are none).

Keys (both layouts; `deepseek2.` prefix): `context_length` (2560), `embedding_length`,
`block_count`, `feed_forward_length` (dense intermediate_size), `attention.head_count`
(4), `rope.freq_base`, `attention.layer_norm_rms_epsilon`, `expert_count`,
`expert_used_count`, `expert_group_count` (n_group), `expert_group_used_count`
(topk_group), `leading_dense_block_count` (first_k_dense_replace), `vocab_size`,
`attention.q_lora_rank` (absent for v2_lite), `attention.kv_lora_rank`,
`expert_feed_forward_length`, `expert_shared_count`, `expert_weights_scale`
(routed_scaling_factor), `expert_weights_norm` (norm_topk_prob), `expert_gating_func` (1
softmax, 2 sigmoid), `rope.dimension_count` (8), `rope.scaling.type` "yarn",
`rope.scaling.factor` (40), `rope.scaling.original_context_length` (64),
`rope.scaling.yarn_log_multiplier` (= 0.1 * mscale_all_dim: 0.0707 / 0.1), plus
`general.architecture`, `general.type`, `general.name`, `general.file_type`.
- **old** (`model-old.gguf`, converters before llama.cpp's MLA cache): `attention.head_count_kv`
  = 4, `attention.key_length` = 24 (nope + rope), `attention.value_length` = 16, tensor
  `blk.N.attn_kv_b.weight` = `kv_b_proj` unchanged.
- **new** (`model-new.gguf`, current converters): `attention.head_count_kv` = 1,
  `attention.key_length` = 40 (kv_lora + rope), `attention.value_length` = 32 (kv_lora),
  `attention.key_length_mla` = 24, `attention.value_length_mla` = 16; `kv_b_proj` viewed
  as `[heads, nope + v, kv_lora]` and split: `blk.N.attn_k_b.weight` = the K rows
  transposed, numpy shape `[heads, kv_lora, nope]` = `[4, 32, 16]` (GGUF ne = `[16, 32,
  4]`), `blk.N.attn_v_b.weight` = the V rows, numpy `[heads, v, kv_lora]` = `[4, 16, 32]`
  (ne `[32, 16, 4]`); no `attn_kv_b`.
- Deviations from what llama.cpp's converters write: `expert_group_count` /
  `expert_group_used_count` are written in BOTH files (llama.cpp writes them only since
  late 2025; without them group-limited routing cannot be reproduced -- llama.cpp before
  that ignored groups); `beta_fast` / `beta_slow` are not stored (none of the converters
  store them; use 32 / 1); the group score is not stored either: max of the group's
  scores when there is no `exp_probs_b.bias` (V2), sum of its top-2 biased scores when
  there is (V3), as in the reference Gate.
- Tensors (numpy shape = row-major, outermost first; GGUF ne is the reverse):
  `token_embd.weight` `[512, 64]`, `output_norm.weight`, `output.weight` `[512, 64]`;
  per block `attn_norm`, `attn_q` (v2_lite, `[96, 64]`) or `attn_q_a` `[32, 64]` +
  `attn_q_a_norm` `[32]` + `attn_q_b` `[96, 32]`, `attn_kv_a_mqa` `[40, 64]` (rows: 32 latent,
  then 8 k_pe), `attn_kv_a_norm` `[32]`, `attn_kv_b` `[128, 32]` (old) or `attn_k_b` +
  `attn_v_b` (new), `attn_output` `[64, 64]`, `ffn_norm`; dense block 0: `ffn_gate`,
  `ffn_up` `[inter, 64]`, `ffn_down` `[64, inter]`; MoE blocks: `ffn_gate_inp` `[E, 64]`
  (router), `exp_probs_b.bias` `[E]` (v3 only: e_score_correction_bias),
  `ffn_gate_shexp` / `ffn_up_shexp` `[shared*moe_inter, 64]`, `ffn_down_shexp`,
  `ffn_gate_exps` / `ffn_up_exps` `[E, moe_inter, 64]`, `ffn_down_exps` `[E, 64, moe_inter]`
  (experts stacked in expert order).  Rope rows are NOT permuted (llama.cpp runs deepseek2
  with adjacent-pair rope, like the HF rows).
- Check: the numpy forward reads every hyperparameter from the GGUF keys and every
  weight from the GGUF tensors (old: naive MLA from attn_kv_b; new: absorbed MLA from
  attn_k_b / attn_v_b, softmax scale `key_length_mla^-0.5 * (1 + yarn_log_multiplier *
  ln factor)^2`) and reproduces `logits.f32` (table above).

## config.json

Rewritten after `save_pretrained` to exactly the key set of the released checkpoints
(V2: DeepSeek-V2-Lite-Chat / V2; V3: DeepSeek-V3), indent 2, sorted keys, without
`auto_map` (no remote code ships here); transformers reloads the rewritten file to the
same model (the reference is computed after that reload).  Edits:
{edit_rows}

## Facts for the C implementer

- Tensor names (safetensors): `model.embed_tokens.weight`, `model.layers.{{i}}.input_layernorm.weight`,
  `self_attn.q_proj.weight` (v2_lite) or `self_attn.q_a_proj.weight` /
  `self_attn.q_a_layernorm.weight` / `self_attn.q_b_proj.weight`,
  `self_attn.kv_a_proj_with_mqa.weight`, `self_attn.kv_a_layernorm.weight`,
  `self_attn.kv_b_proj.weight`, `self_attn.o_proj.weight`, `post_attention_layernorm.weight`,
  layer 0 `mlp.{{gate,up,down}}_proj.weight`, layers 1-2 `mlp.gate.weight`,
  `mlp.gate.e_score_correction_bias` (v3), `mlp.experts.{{e}}.{{gate,up,down}}_proj.weight`,
  `mlp.shared_experts.{{gate,up,down}}_proj.weight`, `model.norm.weight`, `lm_head.weight`.
- q: per head 24 values `[nope 16 | rope 8]`; `kv_a_proj_with_mqa` output `[latent 32 | k_pe 8]`;
  `kv_a_layernorm` (eps 1e-6) on the latent only; `kv_b_proj` rows per head `[k_nope 16 | v 16]`.
- Rope on q_pe and k_pe: adjacent pairs (2j, 2j+1), angle `pos * inv_freq[j]`; the YaRN
  inv_freq of the 4 pairs are in `ref.json` `yarn.inv_freq` (pair 0 unchanged, pair 1 half
  interpolated, pairs 2-3 divided by 40); no factor on cos/sin.
- Softmax scale `24^-0.5 * (0.1 * mscale_all_dim * ln 40 + 1)^2`: {scale_rows}.
- Routing as in "Where transformers departs" 2, 3, 7; -inf group masking; shared experts unscaled.
"""


def write_readme(root):
    base = os.path.join(root, "deepseek")
    names = [s["name"] for s in SPECS] + [s["name"] + "_fp8" for s in SPECS if s.get("fp8")]
    refs, cfgs = {}, {}
    for n in names:
        d = os.path.join(base, n)
        if os.path.exists(os.path.join(d, "ref.json")):
            refs[n] = json.load(open(os.path.join(d, "ref.json")))
            cfgs[n] = json.load(open(os.path.join(d, "config.json")))
    if not refs:
        return
    r0 = next(iter(refs.values()))
    model_rows, greedy_rows, neg_rows, numpy_rows, edit_rows = [], [], [], [], []
    scale_rows = []
    for n, r in refs.items():
        c = cfgs[n]
        cls = c["architectures"][0]
        if not n.endswith("_fp8"):
            model_rows.append(
                f"| {n} | {cls} | {json.dumps(c['q_lora_rank'])} | {c['intermediate_size']} | "
                f"{c['moe_intermediate_size']} | {c['n_routed_experts']} / {c['n_shared_experts']} / "
                f"{c['num_experts_per_tok']} | {c['n_group']} / {c['topk_group']} | {c['topk_method']} | "
                f"{c['scoring_func']} | {str(c['norm_topk_prob']).lower()} | {c['routed_scaling_factor']} | "
                f"{c['rope_scaling']['mscale_all_dim']} | {r['seed']} |")
            scale_rows.append(f"{n} {r['softmax_scale']:.6f}")
        gen = r["ids"][len(r["prompt_ids"]):]
        gm = r["routing"]["min_group_margin"]
        greedy_rows.append(f"| {n} | {' '.join(map(str, gen))} | {min(r['margins'][:MARGIN_STEPS]):.4f} | "
                           f"{r['max_abs_logit']:.3f} | {r['routing']['min_expert_margin']:.2e} | "
                           f"{'-' if gm is None else f'{gm:.2e}'} |")
        for nc in r["negative_controls"]:
            neg_rows.append(f"| {n} | `{nc['kind']}`: {nc['description']} | {nc['rel_to_max_abs_logit']:.4f} |")
        ch = r["checks"]
        g = r.get("gguf", {})
        numpy_rows.append(f"| {n} | {ch['numpy_reference_naive_rel']:.2e} | {ch['numpy_reference_absorbed_rel']:.2e} | "
                          + (f"{g['old']['numpy_rel_diff']:.2e} | {g['new']['numpy_rel_diff']:.2e} |" if g else "- | - |"))
        if not n.endswith("_fp8"):
            for e in r.get("config_post_edits", []):
                now = e["now"] if e["now"] in ("(removed)", "renamed to torch_dtype") else f"`{json.dumps(e['now'])}`"
                edit_rows.append(f"- {n}: `{e['key']}` written as `{json.dumps(e['written'])}`, now {now} ({e['why']})")
    def mask_tokens(n):
        if n not in refs:
            return "-"
        return str(sum(l.get("tokens_kth_selected_score_le_0", 0) for l in refs[n]["routing"]["layers"].values()))
    v2min = refs["v2"]["checks"]["v2_group_mask_zero_equals_minus_inf"]["min_softmax_score_among_kept_group_experts"] if "v2" in refs else float("nan")
    f8 = refs.get("v3_fp8", {})
    versions = (f"torch {r0['torch']}, transformers {r0['transformers']}, gguf-py {r0['gguf_py']}, "
                f"safetensors {r0['safetensors']}, numpy {r0['numpy']}, Python {sys.version.split()[0]}")
    text = README_HEAD.format(
        versions=versions, model_rows="\n".join(model_rows), prompt=r0["prompt_ids"],
        greedy_rows="\n".join(greedy_rows), neg_rows="\n".join(neg_rows),
        numpy_rows="\n".join(numpy_rows), edit_rows="\n".join(edit_rows) or "- none",
        scale_rows=", ".join(scale_rows), v3_mask_tokens=mask_tokens("v3"),
        v3fp8_mask_tokens=mask_tokens("v3_fp8"), v2_min_cand=v2min,
        n_q=f8.get("fp8", {}).get("quantized_tensors", "-"), n_blocks=f8.get("fp8", {}).get("scale_blocks", "-"),
        fp8_qcfg=json.dumps(FP8_QCFG), fp8_same=f8.get("same_greedy_ids_as_v3_f32", "-"),
        max_wdiff=max(l.get("max_weight_diff_vs_reference", 0) for r in refs.values()
                      for l in r["routing"]["layers"].values()),
        fp8_vs_f32=f8.get("rel_diff_vs_v3_f32_logits_on_v3_ids", float("nan")), gguf_py=r0["gguf_py"])
    with open(os.path.join(base, "README.md"), "w") as f:
        f.write(text)


# --------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="fixtures root (e.g. tests/fixtures); writes <out>/deepseek/")
    ap.add_argument("--only", nargs="*", help="model names to (re)generate (default all)")
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, gguf {gguf_version()}, "
        f"safetensors {safetensors.__version__}, numpy {np.__version__}")
    os.makedirs(os.path.join(args.out, "deepseek"), exist_ok=True)
    summary = {}
    for spec in SPECS:
        if args.only and spec["name"] not in args.only:
            continue
        gen_model(spec, args.out, summary)
    if "write_readme" in globals():
        write_readme(args.out)
    json.dump(summary, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
