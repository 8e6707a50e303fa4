"""Broken model files: every one must give a clear error naming the file and the tensor or field,
a non-zero exit, and never a crash or a hang."""
import json
import struct

import numpy as np
import pytest

from conftest import dsinfer

CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 16,
          "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
          "vocab_size": 16, "max_position_embeddings": 32, "rms_norm_eps": 1e-5}


def llama_tensors(cfg):
    E, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    D = E // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * D
    t = {"model.embed_tokens.weight": (V, E), "model.norm.weight": (E,), "lm_head.weight": (V, E)}
    for name, shape in [("input_layernorm.weight", (E,)), ("post_attention_layernorm.weight", (E,)),
                        ("self_attn.q_proj.weight", (E, E)), ("self_attn.k_proj.weight", (kv, E)),
                        ("self_attn.v_proj.weight", (kv, E)), ("self_attn.o_proj.weight", (E, E)),
                        ("mlp.gate_proj.weight", (F, E)), ("mlp.up_proj.weight", (F, E)),
                        ("mlp.down_proj.weight", (E, F))]:
        t["model.layers.0." + name] = shape
    return t


def safetensors_bytes(shapes, mutate=None):
    header, data, off = {}, b"", 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        data += np.full(int(np.prod(shape)), 0.01, "<f4").tobytes()
        off += n
    if mutate:
        mutate(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def make_dir(tmp_path, config=CONFIG, st=None):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    (d / "model.safetensors").write_bytes(st if st is not None else safetensors_bytes(llama_tensors(config)))
    return d


def fails(path, *needles):
    proc = dsinfer("info", path, check=False, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert "Sanitizer" not in proc.stderr and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in: {proc.stderr}"
    return proc.stderr


def test_a_valid_tiny_model_loads(tmp_path):
    dsinfer("info", make_dir(tmp_path))


def test_truncated_safetensors(tmp_path):
    good = safetensors_bytes(llama_tensors(CONFIG))
    fails(make_dir(tmp_path, st=good[:-100]), "model.safetensors")


def test_header_length_beyond_file(tmp_path):
    good = safetensors_bytes(llama_tensors(CONFIG))
    fails(make_dir(tmp_path, st=struct.pack("<Q", len(good) * 10) + good[8:]), "model.safetensors", "header")


def test_overlapping_offsets(tmp_path):
    def mutate(h):
        h["model.norm.weight"]["data_offsets"] = [0, 32]
    fails(make_dir(tmp_path, st=safetensors_bytes(llama_tensors(CONFIG), mutate)), "model.safetensors", "overlap")


def test_offsets_outside_file(tmp_path):
    def mutate(h):
        h["model.norm.weight"]["data_offsets"] = [10 ** 9, 10 ** 9 + 32]
    fails(make_dir(tmp_path, st=safetensors_bytes(llama_tensors(CONFIG), mutate)), "model.safetensors", "model.norm.weight")


def test_unknown_dtype(tmp_path):
    def mutate(h):
        h["model.norm.weight"]["dtype"] = "F7"
    fails(make_dir(tmp_path, st=safetensors_bytes(llama_tensors(CONFIG), mutate)), "model.norm.weight", "F7")


def test_shape_times_dtype_mismatch(tmp_path):
    def mutate(h):
        h["model.norm.weight"]["shape"] = [9]
    fails(make_dir(tmp_path, st=safetensors_bytes(llama_tensors(CONFIG), mutate)), "model.safetensors", "model.norm.weight")


def test_missing_tensor(tmp_path):
    shapes = llama_tensors(CONFIG)
    del shapes["model.layers.0.mlp.up_proj.weight"]
    fails(make_dir(tmp_path, st=safetensors_bytes(shapes)), "model.layers.0.mlp.up_proj.weight", "missing")


def test_wrong_tensor_shape(tmp_path):
    shapes = llama_tensors(CONFIG)
    shapes["model.layers.0.self_attn.k_proj.weight"] = (8, 8)
    fails(make_dir(tmp_path, st=safetensors_bytes(shapes)), "model.layers.0.self_attn.k_proj.weight", "[4, 8]")


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "vocab_size", "architectures"])
def test_config_missing_required_field(tmp_path, field):
    cfg = dict(CONFIG)
    del cfg[field]
    fails(make_dir(tmp_path, config=cfg, st=safetensors_bytes(llama_tensors(CONFIG))), "config.json", field)


def test_config_wrong_type(tmp_path):
    cfg = dict(CONFIG, hidden_size="eight")
    fails(make_dir(tmp_path, config=cfg, st=safetensors_bytes(llama_tensors(CONFIG))), "config.json", "hidden_size")


def test_unknown_architecture(tmp_path):
    cfg = dict(CONFIG, architectures=["MysteryForCausalLM"])
    fails(make_dir(tmp_path, config=cfg), "config.json", "MysteryForCausalLM")


def test_config_not_json(tmp_path):
    d = make_dir(tmp_path)
    (d / "config.json").write_text("{ not json")
    fails(d, "config.json", "invalid JSON")


def test_unsupported_rope_scaling(tmp_path):
    cfg = dict(CONFIG, rope_scaling={"type": "dynamic", "factor": 2.0})
    fails(make_dir(tmp_path, config=cfg), "config.json", "dynamic")


def test_index_names_a_tensor_its_shard_lacks(tmp_path):
    d = make_dir(tmp_path)
    (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"model.norm.weight": "model.safetensors", "ghost.weight": "model.safetensors"}}))
    fails(d, "model.safetensors.index.json", "ghost.weight")


def test_index_shard_path_traversal_is_refused(tmp_path):
    d = make_dir(tmp_path)
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../model.safetensors"}}))
    fails(d, "model.safetensors.index.json", "plain file name")


def test_no_weights(tmp_path):
    d = make_dir(tmp_path)
    (d / "model.safetensors").unlink()
    fails(d, "no model.safetensors")


# --- GGUF -------------------------------------------------------------------------------

def gguf_bytes(version=3, alignment=None, tensor_offset=0, tensor_type=0, string_len=None, magic=b"GGUF"):
    """A one-tensor GGUF with general.architecture = llama, built by hand so it can be broken."""
    kv = []

    def s(text, length=None):
        b = text.encode()
        return struct.pack("<Q", len(b) if length is None else length) + b

    kv.append(s("general.architecture") + struct.pack("<I", 8) + s("llama", string_len))
    if alignment is not None:
        kv.append(s("general.alignment") + struct.pack("<I", 4) + struct.pack("<I", alignment))
    tensor = s("token_embd.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 32, 4) + struct.pack("<I", tensor_type) + struct.pack("<Q", tensor_offset)
    head = magic + struct.pack("<I", version) + struct.pack("<QQ", 1, len(kv)) + b"".join(kv) + tensor
    head += b"\0" * (-len(head) % 32)
    return head + np.zeros(32 * 4, "<f4").tobytes()


def write(tmp_path, data):
    p = tmp_path / "m.gguf"
    p.write_bytes(data)
    return p


def test_gguf_bad_magic(tmp_path):
    fails(write(tmp_path, gguf_bytes(magic=b"GGUX")), "m.gguf", "magic")


def test_gguf_unsupported_version(tmp_path):
    fails(write(tmp_path, gguf_bytes(version=1)), "m.gguf", "version")


@pytest.mark.parametrize("alignment", [0, 3])
def test_gguf_bad_alignment(tmp_path, alignment):
    fails(write(tmp_path, gguf_bytes(alignment=alignment)), "m.gguf", "alignment")


def test_gguf_tensor_outside_file(tmp_path):
    fails(write(tmp_path, gguf_bytes(tensor_offset=1 << 20)), "m.gguf", "token_embd.weight")


def test_gguf_string_longer_than_file(tmp_path):
    fails(write(tmp_path, gguf_bytes(string_len=1 << 40)), "m.gguf")


def test_gguf_unsupported_type_named(tmp_path):
    fails(write(tmp_path, gguf_bytes(tensor_type=16)), "m.gguf", "IQ2_XXS", "token_embd.weight")


def test_gguf_truncated(tmp_path):
    fails(write(tmp_path, gguf_bytes()[:40]), "m.gguf")


def test_gguf_unknown_architecture_is_named(tmp_path):
    data = gguf_bytes().replace(b"llama", b"mamba")
    fails(write(tmp_path, data), "m.gguf", "mamba")
