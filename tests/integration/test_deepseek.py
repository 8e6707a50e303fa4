"""DeepSeek-V2-Lite / V2 / V3 / V3-FP8-like tiny models against Hugging Face transformers,
patched to follow DeepSeek's reference where transformers departs from it (fixtures and the
patches: tests/fixtures/deepseek/README.md, made by tools/gen_deepseek_fixtures.py)."""
import json
import os
import shutil
import struct

import numpy as np
import pytest

from conftest import FIXTURES, dsinfer

DS = FIXTURES / "deepseek"
MODELS = ["v2_lite", "v2", "v3", "v3_fp8"]
GGUF_MODELS = [(m, layout) for m in ["v2_lite", "v2", "v3"] for layout in ["old", "new"]]


def ref(name):
    return json.loads((DS / name / "ref.json").read_text())


def ref_logits(name):
    r = ref(name)
    return np.fromfile(DS / name / "logits.f32", dtype="<f4").reshape(r["n_positions"], r["vocab_size"])


def logits_of(model, ids, tmp_path, env=None):
    out = tmp_path / "out.f32"
    dsinfer("logits", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "-o", out,
            env=dict(os.environ, **(env or {})))
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def greedy_agrees(model, r):
    prompt = r["prompt_ids"]
    proc = dsinfer("run", "-m", model, "--prompt-ids", ",".join(map(str, prompt)), "-n", len(r["ids"]) - len(prompt),
                   "--ids", "--temp", "0", "--ignore-eos")
    got = [int(x) for x in proc.stdout.split()]
    limit = next((len(prompt) + i + 1 for i, m in enumerate(r["margins"]) if m <= 1e-3), len(r["ids"]))
    assert got[:limit] == r["ids"][:limit]


@pytest.mark.parametrize("name", MODELS)
def test_teacher_forced_logits(name, tmp_path):
    r = ref(name)
    ours = logits_of(DS / name, r["ids"][: r["n_positions"]], tmp_path)
    assert rel_err(ours, ref_logits(name)) <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_greedy_ids(name):
    greedy_agrees(DS / name, ref(name))


@pytest.mark.parametrize("name", MODELS)
def test_absorbed_and_expanded_mla_agree(name, tmp_path):
    ids = ref(name)["ids"][:32]
    absorbed = logits_of(DS / name, ids, tmp_path)
    expanded = logits_of(DS / name, ids, tmp_path, env={"DSINFER_MLA": "expanded"})
    assert not np.array_equal(absorbed, expanded)  # really two code paths
    assert rel_err(absorbed, expanded) <= 1e-4


@pytest.mark.parametrize("name,layout", GGUF_MODELS)
def test_gguf_layouts(name, layout, tmp_path):
    model = DS / name / f"model-{layout}.gguf"
    r = ref(name)
    ours = logits_of(model, r["ids"][: r["n_positions"]], tmp_path)
    assert rel_err(ours, ref_logits(name)) <= 1e-4
    greedy_agrees(model, r)


def test_info_reports_the_latent_cache():
    info = json.loads(dsinfer("info", DS / "v3", "--json").stdout)
    # 3 layers × (kv_lora 32 + rope 8) f32 values; naive per-head K (24) + V (16) for 4 heads
    assert info["kv_bytes_per_token"] == 3 * 40 * 4
    assert info["kv_bytes_per_token_naive"] == 3 * 4 * (24 + 16) * 4
    assert info["family"] == "deepseek2"


def test_decode_bytes_count_active_experts_only():
    info = json.loads(dsinfer("info", DS / "v3", "--json").stdout)
    assert info["decode_bytes_per_token"] < info["weight_bytes"]


# --- bad input -----------------------------------------------------------------------------

def copy_model(name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(DS / name, dst, ignore=shutil.ignore_patterns("*.gguf", "logits*", "ref.json"))
    return dst


def edit_config(model, **changes):
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(changes)
    (model / "config.json").write_text(json.dumps(cfg))


def rewrite_safetensors(path, edit):
    """Rewrites a safetensors file after edit(header, tensors: name -> bytes)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    tensors = {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
    edit(header, tensors)
    out, off = {}, 0
    for k in header:
        b = tensors[k]
        out[k] = dict(header[k], data_offsets=[off, off + len(b)])
        off += len(b)
    if meta:
        out["__metadata__"] = meta
    h = json.dumps(out).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(tensors[k] for k in header))


def fails(model, *needles):
    proc = dsinfer("info", model, check=False, timeout=30)
    assert proc.returncode == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, f"{needle!r} not in {proc.stderr!r}"


def test_fp8_weight_without_scale(tmp_path):
    model = copy_model("v3_fp8", tmp_path)
    name = "model.layers.0.self_attn.kv_b_proj.weight_scale_inv"
    def drop(header, tensors):
        del header[name], tensors[name]
    rewrite_safetensors(model / "model.safetensors", drop)
    fails(model, "model.layers.0.self_attn.kv_b_proj.weight", name)


def test_fp8_scale_of_wrong_shape(tmp_path):
    model = copy_model("v3_fp8", tmp_path)
    name = "model.layers.0.self_attn.kv_b_proj.weight_scale_inv"
    def widen(header, tensors):
        header[name]["shape"] = [1, 2]
        tensors[name] = tensors[name] * 2
    rewrite_safetensors(model / "model.safetensors", widen)
    fails(model, name, "[1, 1]")


def test_unknown_topk_method(tmp_path):
    model = copy_model("v3", tmp_path)
    edit_config(model, topk_method="best_effort")
    fails(model, "config.json", "topk_method", "best_effort")


def test_unknown_scoring_func(tmp_path):
    model = copy_model("v3", tmp_path)
    edit_config(model, scoring_func="tanh")
    fails(model, "config.json", "scoring_func", "tanh")


def test_experts_not_divisible_by_groups(tmp_path):
    model = copy_model("v3", tmp_path)
    edit_config(model, n_group=3)
    fails(model, "n_routed_experts 16 is not divisible by n_group 3")


def test_mtp_layer_is_skipped(tmp_path):
    """V3/R1 ship one multi-token-prediction layer at index num_hidden_layers; plain decoding
    ignores it and gives the same logits."""
    model = copy_model("v3", tmp_path)
    r = ref("v3")
    edit_config(model, num_nextn_predict_layers=1)
    def add_mtp(header, tensors):
        for suffix, shape in [("eh_proj.weight", [64, 128]), ("enorm.weight", [64]), ("hnorm.weight", [64]),
                              ("shared_head.norm.weight", [64])]:
            name = f"model.layers.3.{suffix}"
            header[name] = {"dtype": "F32", "shape": shape}
            tensors[name] = np.ones(int(np.prod(shape)), "<f4").tobytes()
    rewrite_safetensors(model / "model.safetensors", add_mtp)
    ours = logits_of(model, r["ids"][: r["n_positions"]], tmp_path)
    assert rel_err(ours, ref_logits("v3")) <= 1e-4


@pytest.mark.parametrize("name", ["v2", "v3_fp8"])
def test_chunking_and_threads_do_not_change_logits(name, tmp_path):
    """Experts see different row groups when the prompt is chunked differently; results must not."""
    ids = ",".join(map(str, ref(name)["ids"][:32]))
    outs = []
    for chunk, threads in [(256, 1), (1, 2), (7, 2)]:
        out = tmp_path / f"{chunk}-{threads}.f32"
        dsinfer("logits", "-m", DS / name, "--prompt-ids", ids, "-o", out, "--chunk", chunk, "-t", threads)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
