"""dsinfer perplexity: the command line, --kl-base, and bad input. The numbers themselves are checked
in tests/unit/test_perplexity.c (against a plain recomputation) and test_llamacpp_agreement.py
(against numpy and llama.cpp on SmolLM2)."""
import json

import pytest

from conftest import FIXTURES, REPO, dsinfer, need_shared
from test_real_models import fetch

TEXT = FIXTURES / "text" / "apache-2.0.txt"


@pytest.fixture(scope="module")
def smollm2():
    return fetch("smollm2")


def test_kl_base_against_itself(smollm2):
    proc = dsinfer("perplexity", "-m", smollm2, "--kl-base", smollm2, "-f", TEXT, "-c", 32, "--chunks", 2, "-b", 7,
                   "--json")
    r = json.loads(proc.stdout)
    assert (r["n_ctx"], r["n_chunks"], r["n_scored"]) == (32, 2, 2 * 15)
    assert r["kl"] == 0 and r["top1_agreement"] == 1
    assert r["base_ppl"] == r["ppl"] and 1 < r["ppl"] < 1000
    assert "chunk 1/2" in proc.stderr and "chunk 2/2" in proc.stderr


def test_text_report(smollm2):
    proc = dsinfer("perplexity", "-m", smollm2, "-f", TEXT, "-c", 16, "--chunks", 2)
    lines = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert lines["text"].endswith("2 chunks of 16, 14 positions scored")
    assert " +/- " in lines["PPL"]


def test_missing_and_empty_text(smollm2, tmp_path):
    proc = dsinfer("perplexity", "-m", smollm2, "-f", tmp_path / "nope.txt", check=False)
    assert proc.returncode == 1 and "nope.txt: No such file or directory" in proc.stderr
    (tmp_path / "empty.txt").write_bytes(b"")
    proc = dsinfer("perplexity", "-m", smollm2, "-f", tmp_path / "empty.txt", check=False)
    assert proc.returncode == 1 and "empty.txt is empty" in proc.stderr


def test_text_shorter_than_two_chunks(smollm2, tmp_path):
    (tmp_path / "short.txt").write_text("A few words are not enough to score.\n")
    proc = dsinfer("perplexity", "-m", smollm2, "-f", tmp_path / "short.txt", check=False)
    assert proc.returncode == 1
    assert "a context of 512 needs at least 1024 (two chunks)" in proc.stderr


def test_base_with_another_tokenizer(smollm2, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    for f in ("config.json", "model.safetensors"):
        (base / f).symlink_to(FIXTURES / "dense" / "llama_gqa_f32" / f)
    (base / "tokenizer.json").symlink_to(need_shared("tokenizers", "qwen2", "tokenizer.json"))
    proc = dsinfer("perplexity", "-m", smollm2, "--kl-base", base, "-f", TEXT, check=False)
    assert proc.returncode == 1 and "the tokenizers differ" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["-f", "x.txt"], "usage: dsinfer perplexity"),
    (["-m", "m.gguf", "-f", "x.txt", "-c", "2"], "-c must be between 4 and"),
    (["-m", "m.gguf", "-f", "x.txt", "--chunks", "0"], "--chunks must be between 1 and"),
    (["-m", "m.gguf", "-f", "x.txt", "--frobnicate"], "unknown option '--frobnicate'"),
])
def test_usage_errors(args, message):
    proc = dsinfer("perplexity", *args, check=False, cwd=REPO)
    assert proc.returncode == 2 and message in proc.stderr
