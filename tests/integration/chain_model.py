"""A tiny Llama model, written at test time, whose greedy output is known in advance: it uses
the real DeepSeek-V3 tokenizer and a chat template the caller chooses, and its weights make
greedy decoding follow a chain of token ids.

How: the attention and MLP output projections are zero, so the final hidden state is
rmsnorm(embed[t]) for the current token t whatever came before; lm_head's row for next(t) is
embed[t], which gives next(t) a logit of about sqrt(dim)·|embed[t]| ≈ 64 against about 8 for
any other row. Each token id may therefore have only one successor in a chain."""
import functools
import json
import struct

import numpy as np
from tokenizers import Tokenizer

from conftest import need_shared

DIM = 64
VOCAB = 129280  # DeepSeek-V3's embedding rows (the tokenizer defines 128815 ids)
EOS = 1         # <｜end▁of▁sentence｜>


def tokenizer_dir():
    return need_shared("tokenizers", "deepseek-v3")


@functools.cache
def tokenizer():
    return Tokenizer.from_file(str(tokenizer_dir() / "tokenizer.json"))


def r1_template():
    return need_shared("templates", "deepseek-r1-distill.jinja").read_text()


def _bf16(a):
    return (np.ascontiguousarray(a, dtype=np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def _safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        raw = _bf16(a)
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    meta = json.dumps(header).encode()
    meta += b" " * (-len(meta) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(meta)) + meta)
        for raw in blobs:
            f.write(raw)


def write_chain_model(out, chains, template):
    """Writes a model directory at `out` whose greedy decoding goes from each chain's first id
    through the rest of it; `template` becomes tokenizer_config.json's chat_template."""
    successor = {}
    for chain in chains:
        for t, nxt in zip(chain, chain[1:]):
            assert successor.setdefault(t, nxt) == nxt, f"token {t} would need two successors"
    rng = np.random.default_rng(0)
    embed = rng.standard_normal((VOCAB, DIM), dtype=np.float32)
    lm_head = rng.standard_normal((VOCAB, DIM), dtype=np.float32) * 0.01
    for t, nxt in successor.items():
        lm_head[nxt] += embed[t]
    small = lambda *shape: rng.standard_normal(shape, dtype=np.float32) * 0.02
    tensors = {
        "model.embed_tokens.weight": embed,
        "model.layers.0.input_layernorm.weight": np.ones(DIM, np.float32),
        "model.layers.0.self_attn.q_proj.weight": small(DIM, DIM),
        "model.layers.0.self_attn.k_proj.weight": small(DIM, DIM),
        "model.layers.0.self_attn.v_proj.weight": small(DIM, DIM),
        "model.layers.0.self_attn.o_proj.weight": np.zeros((DIM, DIM), np.float32),
        "model.layers.0.post_attention_layernorm.weight": np.ones(DIM, np.float32),
        "model.layers.0.mlp.gate_proj.weight": small(DIM, DIM),
        "model.layers.0.mlp.up_proj.weight": small(DIM, DIM),
        "model.layers.0.mlp.down_proj.weight": np.zeros((DIM, DIM), np.float32),
        "model.norm.weight": np.ones(DIM, np.float32),
        "lm_head.weight": lm_head,
    }
    out.mkdir(parents=True, exist_ok=True)
    _safetensors(out / "model.safetensors", tensors)
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=DIM, intermediate_size=DIM,
                  num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, vocab_size=VOCAB,
                  max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  hidden_act="silu", bos_token_id=0, eos_token_id=EOS, torch_dtype="bfloat16")
    (out / "config.json").write_text(json.dumps(config))
    (out / "tokenizer.json").symlink_to(tokenizer_dir() / "tokenizer.json")
    tc = json.loads((tokenizer_dir() / "tokenizer_config.json").read_text())
    tc["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(tc))
    return out
