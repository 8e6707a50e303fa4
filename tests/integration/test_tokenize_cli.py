"""`dsinfer tokenize`: the CLI contract of issue 3, end to end.

    dsinfer tokenize (-m MODEL | --tokenizer DIR) (TEXT | -f FILE) [--bos] [--special]
    dsinfer tokenize (-m MODEL | --tokenizer DIR) --decode "1 2 3" [--skip-special]

Expected ids come from tests/fixtures/tokenizer (made with the pinned Hugging Face tokenizers
and transformers by tools/gen_tokenizer_fixtures.py), from llama.cpp's vectors, or, when the
`tokenizers` package is installed, from Hugging Face live."""
import json
import os
import pathlib
import random
import subprocess

import pytest

from conftest import BINARY, FIXTURES, need_shared


BIN = BINARY


def run(*args, stdin=None):
    """Runs build/dsinfer with bytes in and out."""
    assert BIN.exists(), f"{BIN} is missing: run `make build` first"
    return subprocess.run([str(BIN), *map(str, args)], input=stdin, capture_output=True, timeout=120)


def encode(model, text, *flags, tmp_path=None):
    """Ids for `text` (str or bytes), passed through a file so any byte survives."""
    data = text.encode() if isinstance(text, str) else text
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    proc = run("tokenize", "-m", model, "-f", path, *flags)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout.endswith(b"\n") and proc.stdout.count(b"\n") == 1
    return [int(x) for x in proc.stdout.split()]


def decode(model, ids, *flags):
    proc = run("tokenize", "-m", model, "--decode", " ".join(map(str, ids)), *flags)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode()


def fixture(name):
    texts = json.loads((FIXTURES / "tokenizer" / "corpus.json").read_text(encoding="utf-8"))["texts"]
    cases = json.loads((FIXTURES / "tokenizer" / f"{name}.json").read_text(encoding="utf-8"))["cases"]
    return [(texts[c["i"]], c) for c in cases]


# ---- output format ----

def test_ids_joined_by_single_spaces_and_newline():
    model = need_shared("tokenizers", "deepseek-v3")
    proc = run("tokenize", "--tokenizer", model, "Hello world")
    assert proc.returncode == 0
    assert proc.stdout == b"19923 2058\n"


@pytest.mark.parametrize("how", ["arg", "file"])
def test_empty_input_prints_a_lone_newline(how, tmp_path):
    model = need_shared("tokenizers", "qwen2")
    if how == "arg":
        proc = run("tokenize", "--tokenizer", model, "")
    else:
        (tmp_path / "empty").write_bytes(b"")
        proc = run("tokenize", "--tokenizer", model, "-f", tmp_path / "empty", "--bos")
    assert proc.returncode == 0
    assert proc.stdout == b"\n"


def test_empty_input_with_bos_prints_bos(tmp_path):
    model = need_shared("tokenizers", "deepseek-v3")
    (tmp_path / "empty").write_bytes(b"")
    assert run("tokenize", "--tokenizer", model, "-f", tmp_path / "empty", "--bos").stdout == b"0\n"


@pytest.mark.parametrize("data,offset", [(b"ab\xffcd", 2), (b"\xc3", 0), (b"ok \xe4\xb8", 3),
                                         (b"\xed\xa0\x80", 0), (b"abc\xc0\xaf", 3)])
def test_invalid_utf8_exits_1_naming_the_byte(data, offset, tmp_path):
    model = need_shared("tokenizers", "deepseek-v3")
    (tmp_path / "bad").write_bytes(data)
    proc = run("tokenize", "--tokenizer", model, "-f", tmp_path / "bad")
    assert proc.returncode == 1
    assert f"invalid UTF-8 at byte {offset}".encode() in proc.stderr
    assert proc.stdout == b""


def test_file_bytes_are_kept_exactly(tmp_path):
    """-f encodes the file's bytes: \\r\\n stays \\r\\n, a missing final newline stays missing."""
    model = need_shared("tokenizers", "qwen2")
    assert encode(model, "a\r\nb", tmp_path=tmp_path) == [64, 319, 65]
    assert encode(model, "a\nb\n", tmp_path=tmp_path) == [64, 198, 65, 198]


def test_usage_errors_exit_2():
    model = need_shared("tokenizers", "qwen2")
    assert run("tokenize", "hello").returncode == 2                         # no model
    assert run("tokenize", "--tokenizer", model).returncode == 2            # no input
    assert run("tokenize", "--tokenizer", model, "a", "b").returncode == 2  # two texts
    assert run("tokenize", "--tokenizer", model, "--frobnicate", "a").returncode == 2
    assert run("tokenize", "--help").returncode == 0


# ---- modes, --bos, against the Hugging Face fixtures ----

@pytest.mark.parametrize("name", ["deepseek-v3", "qwen2", "llama3"])
def test_modes_match_hugging_face(name, tmp_path):
    model = need_shared("tokenizers", name)
    cases = fixture(name)
    # a few strings with added tokens and a spread of the others: every CLI call loads the
    # tokenizer, so the bulk (all strings, all modes) is checked by tests/unit/test_tokenizer_ref
    picked = [tc for tc in cases if "ns" in tc[1]][:2] + cases[1::200]
    for text, c in picked:
        assert encode(model, text, tmp_path=tmp_path) == c.get("ns", c["all"]), text
        assert encode(model, text, "--special", tmp_path=tmp_path) == c["all"], text
        if "bos" in c:
            assert encode(model, text, "--bos", tmp_path=tmp_path) == c["bos"], text


def test_bos_per_family(tmp_path):
    assert encode(need_shared("tokenizers", "deepseek-v3"), "hi", "--bos", tmp_path=tmp_path)[0] == 0
    assert encode(need_shared("tokenizers", "llama3"), "hi", "--bos", tmp_path=tmp_path)[0] == 128000
    assert encode(need_shared("tokenizers", "qwen2"), "hi", "--bos", tmp_path=tmp_path) == [6023]  # adds nothing
    coder = need_shared("tokenizer-tests", "ggml-vocab-deepseek-coder.gguf")
    assert encode(coder, "hi", "--bos", tmp_path=tmp_path)[0] == 32013


def test_special_flag_decides_special_tokens(tmp_path):
    model = need_shared("tokenizers", "deepseek-v3")
    text = "<｜begin▁of▁sentence｜><｜User｜>hi"
    default = encode(model, text, tmp_path=tmp_path)
    special = encode(model, text, "--special", tmp_path=tmp_path)
    assert special == [0, 128803, 6366]
    assert 0 not in default and default[-2:] == [128803, 6366]  # <｜User｜> is special: false in V3


def test_tokenizer_dir_with_only_the_two_json_files(tmp_path):
    src = need_shared("tokenizers", "deepseek-v3")
    d = tmp_path / "tok"
    d.mkdir()
    for f in ["tokenizer.json", "tokenizer_config.json"]:
        os.symlink(src / f, d / f)
    assert run("tokenize", "--tokenizer", d, "Hello world", "--bos").stdout == b"0 19923 2058\n"


# ---- llama.cpp vectors through the CLI (GGUF and HF) ----

@pytest.mark.parametrize("name,model", [
    ("deepseek-llm", ("tokenizer-tests", "ggml-vocab-deepseek-llm.gguf")),
    ("deepseek-coder", ("tokenizer-tests", "ggml-vocab-deepseek-coder.gguf")),
    ("qwen2", ("tokenizers", "qwen2")),
    ("deepseek-r1-qwen", ("tokenizers", "qwen2")),
    ("llama-bpe", ("tokenizers", "llama3")),
])
def test_llama_cpp_vectors(name, model, tmp_path):
    model = need_shared(*model)
    inp = need_shared("tokenizer-tests", f"ggml-vocab-{name}.gguf.inp").read_bytes().decode()
    out = need_shared("tokenizer-tests", f"ggml-vocab-{name}.gguf.out").read_text().split("\n")
    texts = inp.split("\n__ggml_vocab_test__\n")
    assert texts[-1] == ""  # the file ends with a separator
    texts = texts[:-1]
    assert len(texts) == 46
    for i, text in enumerate(texts):
        if i % 15 and i != 44:  # a sample; tests/unit/test_tokenizer_ref checks all 46
            continue
        want = [int(x) for x in out[i].split()]
        assert encode(model, text, "--special", tmp_path=tmp_path) == want, repr(text)


# ---- --decode ----

@pytest.mark.parametrize("name", ["deepseek-v3", "qwen2", "llama3"])
def test_decode_matches_transformers(name):
    model = need_shared("tokenizers", name)
    cases = fixture(name)
    picked = [tc for tc in cases if "dec" in tc[1] or "dec_skip" in tc[1]][:3] + cases[::300]
    for text, c in picked:
        want = c.get("dec", text)
        assert decode(model, c["all"]) == want
        assert decode(model, c["all"], "--skip-special") == c.get("dec_skip", want)


def test_decode_prints_no_newline_and_keeps_partial_bytes_lossy():
    model = need_shared("tokenizers", "deepseek-v3")
    proc = run("tokenize", "--tokenizer", model, "--decode", "19923 2058")
    assert proc.stdout == b"Hello world"
    empty = run("tokenize", "--tokenizer", model, "--decode", "")
    assert empty.returncode == 0 and empty.stdout == b""


@pytest.mark.parametrize("bad", ["999999", "-1", "129000"])
def test_decode_out_of_range_id_is_an_error_naming_it(bad):
    model = need_shared("tokenizers", "deepseek-v3")
    proc = run("tokenize", "--tokenizer", model, "--decode", f"1 {bad} 2")
    assert proc.returncode != 0
    assert bad.encode() in proc.stderr


def test_decode_rejects_non_numbers():
    model = need_shared("tokenizers", "deepseek-v3")
    assert run("tokenize", "--tokenizer", model, "--decode", "1 x 2").returncode == 2


# ---- bad tokenizer files ----

@pytest.mark.parametrize("section,kind", [("model", "Unigram"), ("pre_tokenizer", "Metaspace"),
                                          ("normalizer", "Lowercase"), ("decoder", "WordPiece")])
def test_unknown_types_are_named(section, kind, tmp_path):
    src = json.loads(need_shared("tokenizers", "qwen2", "tokenizer.json").read_text(encoding="utf-8"))
    if section == "model":
        src["model"]["type"] = kind
    else:
        src[section] = {"type": kind}
    (tmp_path / "tokenizer.json").write_text(json.dumps(src), encoding="utf-8")
    proc = run("tokenize", "--tokenizer", tmp_path, "hi")
    assert proc.returncode == 1
    assert f"'{kind}'".encode() in proc.stderr


def test_unknown_gguf_pre_tokenizer_is_named(tmp_path):
    gguf = pytest.importorskip("gguf")
    src = gguf.GGUFReader(str(need_shared("tokenizer-tests", "ggml-vocab-deepseek-coder.gguf")))
    w = gguf.GGUFWriter(str(tmp_path / "v.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("mystery-pre")
    w.add_token_list([bytes(p) for p in (src.fields["tokenizer.ggml.tokens"].parts[i]
                                         for i in src.fields["tokenizer.ggml.tokens"].data)])
    w.add_token_merges([bytes(src.fields["tokenizer.ggml.merges"].parts[i])
                        for i in src.fields["tokenizer.ggml.merges"].data[:100]])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    proc = run("tokenize", "-m", tmp_path / "v.gguf", "hi")
    assert proc.returncode == 1
    assert b"'mystery-pre'" in proc.stderr


# ---- live comparison with Hugging Face, when the package is installed ----

def random_text(rng):
    alphabet = ["a", "b", "Z", " ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", "1", "23", "456",
                "中文", "日本語", "한국", "é", "e\u0301", "😀", "👍🏽", "👨‍👩‍👧", ".", ",", "'s", "'LL", "!?",
                "<｜User｜>", "<|im_start|>", "<|begin_of_text|>", "<think>", "\u200b", "ـ", "ñ"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))


@pytest.mark.parametrize("name", ["deepseek-v3", "qwen2", "llama3"])
def test_random_strings_match_tokenizers_package(name, tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    model = need_shared("tokenizers", name)
    hf = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))
    rng = random.Random(name)
    texts = [random_text(rng) for _ in range(6)]
    for flags, special in [((), True), (("--special",), False)]:
        hf.encode_special_tokens = special
        for text in texts:
            assert encode(model, text, *flags, tmp_path=tmp_path) == hf.encode(text, add_special_tokens=False).ids
