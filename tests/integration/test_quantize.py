"""dsinfer quantize end to end (docs/quantization.md).

- Every fixture model (llama, llama3 rope, linear rope, qwen2 f32/bf16, DeepSeek V2/V2-Lite/V3,
  V3 FP8) converted with --type f32 gives the fixture's reference logits (the name and layout
  mapping is lossless), and with --type q8_0 stays close to them.
- Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 tensors are byte-identical to gguf-py 0.17.1's quantizers, on the
  fixture's own gguf-py-made GGUFs and on hard data (ties, zeros, huge and tiny values).
- A GGUF source keeps every key (tokenizer included) and tokenizes the same; the written files
  read back with the gguf Python reader; the mixes pick llama.cpp's types; -t does not matter.
- Bad input fails cleanly with no file left behind, including an interrupted run.
"""
import json
import os
import signal
import struct
import subprocess
import time

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf.quants import quantize as gguf_py_quantize

from conftest import BINARY, FIXTURES, dsinfer, need_shared

DENSE = FIXTURES / "dense"
DEEPSEEK = FIXTURES / "deepseek"
MODELS = [DENSE / m for m in ("llama_gqa_f32", "llama_linear_f32", "llama3rope_bf16_sharded", "qwen2_f32", "qwen2_bf16")] + \
         [DEEPSEEK / m for m in ("v2", "v2_lite", "v3", "v3_fp8")]


def quantize(src, out, qtype, *extra, check=True):
    return dsinfer("quantize", src, out, "--type", qtype, *extra, check=check)


def reference(model):
    r = json.loads((model / "ref.json").read_text())
    n = r["n_positions"]
    return r["ids"][:n], np.fromfile(model / "logits.f32", dtype="<f4").reshape(n, -1)


def logits_of(model, ids, tmp_path):
    out = tmp_path / "logits.f32"
    dsinfer("logits", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "-o", out)
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1)


def rel_err(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.name)
def test_f32_conversion_is_lossless(model, tmp_path):
    out = tmp_path / "m.gguf"
    quantize(model, out, "f32")
    ids, ref = reference(model)
    assert rel_err(logits_of(out, ids, tmp_path), ref) < 1e-4  # measured <= 2.3e-6


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.name)
def test_q8_0_logits_close_to_reference(model, tmp_path):
    """These random tiny models are sharp (the fixture's own gguf-py Q8_0 copy of llama_gqa
    is 6% off in logits) and MoE routing flips amplify that, so 'close' is: every position
    whose reference top-1 leads by more than 1.0 keeps its argmax, and no logit moves by more
    than the reference's largest logit (flips seen: margins up to 0.53, on the scalar kernels)."""
    out = tmp_path / "m.gguf"
    quantize(model, out, "q8_0")
    ids, ref = reference(model)
    ours = logits_of(out, ids, tmp_path)
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1.0
    assert (ours.argmax(1) == ref.argmax(1))[clear].all()
    assert rel_err(ours, ref) < 1.0


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "q4_1"])
def test_pure_recipe_reproduces_gguf_py_fixture(qtype, tmp_path):
    """tests/fixtures/dense/llama_gqa_f32/llama_gqa_<type>.gguf was written by gguf-py (after
    llama.cpp's Q/K permutation); ours must hold the same bytes and metadata, so dsinfer gives
    the same logits for both."""
    model = DENSE / "llama_gqa_f32"
    out = tmp_path / "m.gguf"
    quantize(model, out, qtype, "--pure")
    theirs = {t.name: t for t in gguf.GGUFReader(model / f"llama_gqa_{qtype}.gguf").tensors}
    ours = gguf.GGUFReader(out).tensors
    assert sorted(t.name for t in ours) == sorted(theirs)
    for t in ours:
        u = theirs[t.name]
        assert t.tensor_type == u.tensor_type, t.name
        assert np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(u.data).view(np.uint8)), t.name
    ids, _ = reference(model)
    assert np.array_equal(logits_of(out, ids, tmp_path), logits_of(model / f"llama_gqa_{qtype}.gguf", ids, tmp_path))


def hard_rows(rng, rows=64, cols=256):
    """Rows that stress rounding: Gaussian, exact ties (multiples of 1/4, 1/16), zeros, one
    sign only, huge and tiny magnitudes, a lone outlier."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    x[1] = np.round(x[1] * 8) / 4
    x[2] = np.round(x[2] * 64) / 16
    x[3] = 0
    x[4] = -np.abs(x[4])
    x[5] *= 3e4
    x[6] *= 1e-5
    x[7] = 0.01 * x[7]
    x[7, 100] = 50
    x[8] = np.arange(cols, dtype=np.float32) % 16 - 8
    return x


def write_gguf(path, tensors, arch="llama", n_layer=1, extra=None):
    w = gguf.GGUFWriter(path, arch)
    w.add_block_count(n_layer)
    for key, value in (extra or {}).items():
        w.add_key_value(key, value[0], value[1])
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # gguf-py on the 3e4-scaled row
@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
def test_bytes_match_gguf_py_on_hard_data(qtype, tmp_path):
    rng = np.random.default_rng(11)
    tensors = {f"blk.0.ffn_up.weight": hard_rows(rng), "blk.0.ffn_gate.weight": hard_rows(rng, 32, 512),
               "blk.0.attn_norm.weight": rng.standard_normal(256).astype(np.float32)}
    src, out = tmp_path / "src.gguf", tmp_path / "out.gguf"
    write_gguf(src, tensors)
    quantize(src, out, qtype, "--pure")
    for t in gguf.GGUFReader(out).tensors:
        data = np.asarray(t.data).view(np.uint8).reshape(-1)
        if t.name.endswith("norm.weight"):
            assert t.tensor_type == QT.F32
            continue
        assert t.tensor_type == QT[qtype.upper()]
        want = gguf_py_quantize(tensors[t.name], QT[qtype.upper()]).reshape(-1)
        assert np.array_equal(data, want), t.name


def test_gguf_source_keeps_metadata_and_tokenizer(tmp_path):
    vocab = need_shared("tokenizer-tests", "ggml-vocab-deepseek-llm.gguf")
    vr = gguf.GGUFReader(vocab)
    model = gguf.GGUFReader(DENSE / "llama_gqa_f32" / "model.gguf")
    src, out = tmp_path / "src.gguf", tmp_path / "out.gguf"
    w = gguf.GGUFWriter(src, "llama")
    for reader in (model, vr):
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key == "general.architecture" or (reader is vr and not key.startswith("tokenizer.")):
                continue
            vtype = field.types[0]
            value = field.contents()
            sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            w.add_key_value(key, value, vtype, sub_type=sub)
    for t in model.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_shape=list(reversed([int(x) for x in t.shape])), raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    quantize(src, out, "q4_k_m")
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
    changed = {"general.file_type", "general.quantization_version"}
    keys_a = {k for k in a.fields if not k.startswith("GGUF.")}
    keys_b = {k for k in b.fields if not k.startswith("GGUF.")}
    assert keys_b - keys_a <= changed and keys_a - keys_b <= changed
    for key in keys_a - changed:
        fa, fb = a.fields[key], b.fields[key]
        assert fa.types == fb.types, key
        assert fa.contents() == fb.contents(), key
    assert b.fields["general.file_type"].contents() == 15
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    assert [list(t.shape) for t in a.tensors] == [list(t.shape) for t in b.tensors]
    text = "解释量子计算的基本原理。Hello, world! 123 4567"
    ids_src = dsinfer("tokenize", "-m", src, text).stdout
    assert ids_src == dsinfer("tokenize", "-m", out, text).stdout


def test_hf_tokenizer_carried_over(tmp_path):
    """A Hugging Face directory with a (freshly trained, 500-token) Qwen2-style tokenizer: the
    GGUF names the qwen2 pre-tokenizer and tokenizes exactly as tokenizer.json does."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    hf = tmp_path / "hf"
    hf.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (hf / name).symlink_to(DENSE / "qwen2_f32" / name)
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    qwen2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(qwen2), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["The quick brown fox jumps over the lazy dog. " * 20, "Hello world, it's 12345. " * 20], trainer)
    tok.save(str(hf / "tokenizer.json"))
    (hf / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<|endoftext|>",
                                                          "chat_template": "{{ messages[0]['content'] }}"}))
    out = tmp_path / "m.gguf"
    quantize(hf, out, "q8_0")
    f = gguf.GGUFReader(out).fields
    assert f["tokenizer.ggml.pre"].contents() == "qwen2" and f["tokenizer.ggml.model"].contents() == "gpt2"
    assert f["tokenizer.ggml.eos_token_id"].contents() == 2 and f["tokenizer.ggml.padding_token_id"].contents() == 0
    assert len(f["tokenizer.ggml.tokens"].contents()) == 512  # padded to the embedding's rows
    assert f["tokenizer.ggml.tokens"].contents()[511] == "[PAD511]"
    assert f["tokenizer.chat_template"].contents() == "{{ messages[0]['content'] }}"
    for text in ["Hello world, it's 12345 o'clock.", "The LAZY dog's 3 foxes\n\n  jump", "café e\u0301"]:
        assert dsinfer("tokenize", "-m", hf, text).stdout == dsinfer("tokenize", "-m", out, text).stdout


def test_mixed_recipes_follow_llama_cpp(tmp_path):
    rng = np.random.default_rng(3)
    n_layer = 8
    tensors = {"token_embd.weight": rng.standard_normal((64, 256)).astype(np.float32)}
    for l in range(n_layer):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up"):
            tensors[f"blk.{l}.{name}.weight"] = rng.standard_normal((32, 256)).astype(np.float32)
        tensors[f"blk.{l}.ffn_down.weight"] = rng.standard_normal((256, 128)).astype(np.float32)  # rows of 128
        tensors[f"blk.{l}.attn_norm.weight"] = np.ones(256, np.float32)
    tensors["output.weight"] = rng.standard_normal((64, 256)).astype(np.float32)
    src = tmp_path / "src.gguf"
    write_gguf(src, tensors, n_layer=n_layer)
    more_bits = {0, 7, 3, 6}  # l < n/8, l >= 7n/8, (l - n/8) % 3 == 2

    def types(qtype, *extra):
        out = tmp_path / f"{qtype}.gguf"
        quantize(src, out, qtype, *extra)
        return {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}

    t = types("q4_k_m")
    assert t["output.weight"] == "Q6_K" and t["token_embd.weight"] == "Q4_K"
    for l in range(n_layer):
        assert t[f"blk.{l}.attn_v.weight"] == ("Q6_K" if l in more_bits else "Q4_K")
        assert t[f"blk.{l}.ffn_down.weight"] == ("Q8_0" if l in more_bits else "Q5_0")  # row-length fallbacks
        assert t[f"blk.{l}.attn_q.weight"] == "Q4_K" and t[f"blk.{l}.attn_norm.weight"] == "F32"
    t = types("q5_k_m")
    assert t["blk.3.attn_v.weight"] == "Q6_K" and t["blk.4.attn_v.weight"] == "Q5_K" and t["blk.4.ffn_down.weight"] == "Q5_1"
    t = types("q8_0")
    assert set(v for k, v in t.items() if not k.endswith("norm.weight")) == {"Q8_0"}
    t = types("q4_0")
    assert t["output.weight"] == "Q6_K" and t["blk.0.attn_v.weight"] == "Q4_0"
    t = types("q4_0", "--pure")
    assert t["output.weight"] == "Q4_0"
    del tensors["output.weight"]  # tied: token_embd is the output head too
    write_gguf(src, tensors, n_layer=n_layer)
    assert types("q4_k")["token_embd.weight"] == "Q6_K"


def test_thread_count_does_not_change_the_file(tmp_path):
    model = DEEPSEEK / "v3_fp8"
    quantize(model, tmp_path / "a.gguf", "q4_k_m", "-t", "1")
    quantize(model, tmp_path / "b.gguf", "q4_k_m", "-t", "3")
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()


# --- bad input ----------------------------------------------------------------------------

def fails(args, *words, status=1):
    proc = dsinfer("quantize", *args, check=False)
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr and "Sanitizer" not in proc.stderr
    for w in words:
        assert w in proc.stderr, (w, proc.stderr)
    return proc


def raw_gguf(ne0, ggml_type, data_bytes):
    """One tensor 'blk.0.ffn_up.weight' [4 rows of ne0] of a given type id, built by hand."""
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    kv = [s("general.architecture") + struct.pack("<I", 8) + s("llama"),
          s("llama.block_count") + struct.pack("<I", 4) + struct.pack("<I", 1)]
    info = s("blk.0.ffn_up.weight") + struct.pack("<I", 2) + struct.pack("<QQ", ne0, 4) + struct.pack("<IQ", ggml_type, 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv) + info
    head += b"\0" * (-len(head) % 32)
    return head + bytes(data_bytes)


@pytest.mark.parametrize("case,words", [
    ("row_length", ["row length ne[0] = 100 is not a multiple of the Q4_K block size 256"]),
    ("truncated", ["blk.0.ffn_up.weight", "run past the end of the file"]),
    ("unknown_type", ["unknown ggml type 77"]),
    ("unsupported_type", ["IQ2_XXS"]),
    ("nan", ["blk.0.ffn_up.weight", "NaN"]),
])
def test_bad_gguf_source(case, words, tmp_path):
    src = tmp_path / "src.gguf"
    if case == "row_length":
        src.write_bytes(raw_gguf(100, 12, 4 * 144))
    elif case == "truncated":
        src.write_bytes(raw_gguf(256, 12, 4 * 144)[:-100])
    elif case == "unknown_type":
        src.write_bytes(raw_gguf(256, 77, 4 * 144))
    elif case == "unsupported_type":
        src.write_bytes(raw_gguf(256, 16, 4 * 66))
    else:
        x = np.ones((4, 256), np.float32)
        x[2, 7] = np.nan
        write_gguf(src, {"blk.0.ffn_up.weight": x})
    out = tmp_path / "out.gguf"
    fails([src, out, "--type", "q4_0"], *words)
    assert leftovers(tmp_path) == ["src.gguf"]


def test_unwritable_destination(tmp_path):
    fails([DENSE / "qwen2_f32", tmp_path / "no" / "such" / "dir.gguf", "--type", "q8_0"], "cannot create", "No such file")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        fails([DENSE / "qwen2_f32", ro / "m.gguf", "--type", "q8_0"], "cannot create", "Permission denied")
    finally:
        ro.chmod(0o700)


def test_refuses_to_overwrite_the_input(tmp_path):
    src = tmp_path / "m.gguf"
    write_gguf(src, {"blk.0.ffn_up.weight": np.ones((4, 256), np.float32)})
    before = src.read_bytes()
    fails([src, src, "--type", "q8_0"], "refusing to overwrite the input")
    fails([src, tmp_path / "." / "m.gguf", "--type", "q8_0"], "refusing to overwrite the input")
    assert src.read_bytes() == before


@pytest.mark.parametrize("args,words", [
    (["--type", "q3_k_xl"], ["unknown --type 'q3_k_xl'", "q4_k_m"]),
    ([], ["usage"]),
    (["--type", "q8_0", "-t", "0"], ["-t"]),
])
def test_usage_errors(args, words, tmp_path):
    fails([DENSE / "qwen2_f32", tmp_path / "m.gguf", *args], *words, status=2)
    assert leftovers(tmp_path) == []


def test_missing_source(tmp_path):
    fails([tmp_path / "nope", tmp_path / "m.gguf", "--type", "q8_0"], "no such file or directory")
    assert leftovers(tmp_path) == []


def test_sigint_leaves_no_file(tmp_path):
    src = tmp_path / "big.gguf"
    write_gguf(src, {"blk.0.ffn_up.weight": np.random.default_rng(0).standard_normal((2048, 4096)).astype(np.float32)})
    proc = subprocess.Popen([str(BINARY), "quantize", str(src), str(tmp_path / "out.gguf"), "--type", "q6_k", "-t", "1"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not any(p.name.startswith("out.gguf.tmp-") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert leftovers(tmp_path) == ["big.gguf"]
