"""stories260k: a real Llama checkpoint, checked against llama2.c's run.c outputs (README in
../shared/models/stories260k)."""
import numpy as np
import pytest

from conftest import dsinfer, need_shared, stats_line


def expected(name):
    line = need_shared("models", "stories260k", f"expected_{name}.txt").read_text().splitlines()[1]
    return [int(x) for x in line.split()]


def prompt_of(name):
    header = need_shared("models", "stories260k", f"expected_{name}.txt").read_text().splitlines()[0]
    inside = header.split("prompt_ids=[", 1)[1].split("]", 1)[0]
    return [int(x) for x in inside.split(",")]


def run_ids(prompt, n, *extra):
    model = need_shared("models", "stories260k")
    ids = ",".join(map(str, prompt))
    proc = dsinfer("run", "-m", model, "--prompt-ids", ids, "-n", n, "--ids", "--temp", "0", *extra)
    return [int(x) for x in proc.stdout.split()], proc


def linked_copy(tmp_path):
    """A model directory holding links to stories260k's config and weights, for variations."""
    src = need_shared("models", "stories260k")
    model = tmp_path / "m"
    model.mkdir()
    for f in ("config.json", "model.safetensors"):
        (model / f).symlink_to(src / f)
    return model


def our_logits(ids, tmp_path, *extra):
    out = tmp_path / "logits.f32"
    dsinfer("logits", "-m", need_shared("models", "stories260k"), "--prompt-ids", ",".join(map(str, ids)),
            "-o", out, *extra)
    return np.fromfile(out, dtype="<f4").reshape(len(ids), 512)


def test_teacher_forced_logits_match_run_c(tmp_path):
    ref = np.fromfile(need_shared("models", "stories260k", "logits_prompt_b_16x512.f32"), dtype="<f4").reshape(16, 512)
    ids = expected("prompt_b")[:16]
    ours = our_logits(ids, tmp_path)
    assert np.abs(ours - ref).max() <= 1e-4


def test_greedy_from_bos():
    exp = expected("bos")
    got, _ = run_ids([1], 201 - 1)
    assert got == exp


def test_greedy_prompt_c_up_to_the_near_tie():
    exp = expected("prompt_c")
    prompt = prompt_of("prompt_c")
    got, _ = run_ids(prompt, 201 - len(prompt))
    assert len(got) == len(exp)
    # The reference has a 0.00059 top-2 margin at position 37; the contract is equality up to
    # and including position 38.
    assert got[:39] == exp[:39]


def test_greedy_prompt_b_nostop_until_our_margin_is_small(tmp_path):
    exp = expected("prompt_b_nostop")
    prompt = prompt_of("prompt_b_nostop")
    got, _ = run_ids(prompt, 201 - len(prompt))
    logits = our_logits(exp, tmp_path)
    top2 = np.sort(logits, axis=1)[:, -2:]
    margins = top2[:, 1] - top2[:, 0]
    # Position p's logits choose id p + 1; compare up to the first step with margin < 1e-3.
    limit = len(exp)
    for p in range(len(prompt) - 1, len(exp) - 1):
        if margins[p] < 1e-3:
            limit = p + 2
            break
    assert got[:limit] == exp[:limit]
    assert limit > 50, f"our margin collapsed too early (position {limit - 2})"


def test_threads_and_chunks_do_not_change_ids_or_logits(tmp_path):
    prompt = prompt_of("prompt_c")
    one, _ = run_ids(prompt, 60, "-t", "1")
    two, _ = run_ids(prompt, 60, "-t", "2")
    assert one == two
    ids = expected("prompt_c")[:40]
    a = our_logits(ids, tmp_path, "--chunk", "1", "-t", "1")
    b = our_logits(ids, tmp_path, "--chunk", "256", "-t", "2")
    assert np.array_equal(a, b)


def test_stats_line_and_length_stop():
    got, proc = run_ids([1, 403], 5)
    stats = stats_line(proc.stderr)
    assert list(stats) == ["prompt_tokens", "generated_tokens", "stop", "prefill_tok_s", "decode_tok_s", "seed"]
    assert stats["prompt_tokens"] == "2" and stats["generated_tokens"] == "5" and stats["stop"] == "length"
    assert len(got) == 7


def test_context_stop():
    # The checkpoint's context is 512; -c 10 makes a 4-token prompt stop after 6 new tokens.
    got, proc = run_ids([1, 403, 407, 261], 100, "-c", "10")
    stats = stats_line(proc.stderr)
    assert stats["stop"] == "context" and len(got) == 10


def test_eos_stop_and_ignore_eos(tmp_path):
    # stories260k never produces EOS greedily, so make a copy whose generation_config says the
    # first greedy token from BOS (461) is an EOS.
    model = linked_copy(tmp_path)
    (model / "generation_config.json").write_text('{"bos_token_id": 1, "eos_token_id": [2, 461]}')
    proc = dsinfer("run", "-m", model, "--prompt-ids", "1", "-n", "10", "--ids", "--temp", "0")
    assert proc.stdout.split() == ["1", "461"]
    assert stats_line(proc.stderr)["stop"] == "eos"
    proc = dsinfer("run", "-m", model, "--prompt-ids", "1", "-n", "10", "--ids", "--temp", "0", "--ignore-eos")
    assert len(proc.stdout.split()) == 11 and stats_line(proc.stderr)["stop"] == "length"


def test_sampling_is_reproducible_with_a_seed():
    args = ["--temp", "0.8", "--top-k", "40", "--top-p", "0.9", "--min-p", "0.02", "--seed", "1234",
            "--repeat-penalty", "1.1", "--presence-penalty", "0.2", "--frequency-penalty", "0.1"]
    a, pa = run_ids([1, 403], 40, *args)
    b, _ = run_ids([1, 403], 40, *args)
    c, _ = run_ids([1, 403], 40, *args[:-10], "--seed", "99")
    assert a == b and a != c
    assert stats_line(pa.stderr)["seed"] == "1234"


def test_random_seed_is_printed_and_replays():
    _, p = run_ids([1, 403], 20, "--temp", "1.0")
    seed = stats_line(p.stderr)["seed"]
    first = p.stdout
    _, q = run_ids([1, 403], 20, "--temp", "1.0", "--seed", seed)
    assert q.stdout == first


def test_prompt_id_out_of_range_names_its_position():
    proc = dsinfer("run", "-m", need_shared("models", "stories260k"), "--prompt-ids", "1, 5 600", "--ids", check=False)
    assert proc.returncode != 0
    assert "600" in proc.stderr and "position 2" in proc.stderr


def test_text_output_without_tokenizer_exits_2():
    proc = dsinfer("run", "-m", need_shared("models", "stories260k"), "--prompt-ids", "1", "-n", "3", check=False)
    assert proc.returncode == 2
    assert "tokenizer" in proc.stderr


@pytest.mark.parametrize("flags", [["-n", "x"], ["--temp", "-1"], ["--top-p", "2"], ["--bogus"]])
def test_bad_flags_are_usage_errors(flags):
    proc = dsinfer("run", "-m", need_shared("models", "stories260k"), "--prompt-ids", "1", "--ids", *flags, check=False)
    assert proc.returncode == 2 and proc.stderr


def test_info_json():
    import json

    proc = dsinfer("info", need_shared("models", "stories260k"), "--json", "--ctx", "256")
    info = json.loads(proc.stdout)
    assert info["architecture"] == "LlamaForCausalLM" and info["layers"] == 5 and info["kv_heads"] == 4
    assert info["bytes_per_dtype"] == {"F32": info["weight_bytes"]}
    assert info["kv_bytes_per_token"] == 2 * 5 * 4 * 8 * 4
    assert info["kv_bytes"] == 256 * info["kv_bytes_per_token"]


def test_bench_json_lines():
    import json

    proc = dsinfer("bench", "-m", need_shared("models", "stories260k"), "-p", "32", "-n", "8,0", "-t", "1", "-r", "1", "--json")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["decode_tokens"] for r in rows] == [8, 0]
    assert rows[0]["type"] == "F32" and rows[0]["threads"] == 1 and rows[0]["prefill_tok_s"] > 0
    assert rows[1]["decode_tok_s"] == 0


def test_sampling_defaults_come_from_generation_config(tmp_path):
    model = linked_copy(tmp_path)
    greedy, _ = run_ids([1, 403], 30)
    # No generation_config: greedy.
    plain = dsinfer("run", "-m", model, "--prompt-ids", "1,403", "-n", 30, "--ids", "--seed", 5)
    assert [int(x) for x in plain.stdout.split()] == greedy
    (model / "generation_config.json").write_text('{"do_sample": true, "temperature": 1.5, "top_p": 0.99}')
    a = dsinfer("run", "-m", model, "--prompt-ids", "1,403", "-n", 30, "--ids", "--seed", 5)
    b = dsinfer("run", "-m", model, "--prompt-ids", "1,403", "-n", 30, "--ids", "--seed", 5)
    assert a.stdout == b.stdout and [int(x) for x in a.stdout.split()] != greedy
    # --temp 0 overrides the file.
    c = dsinfer("run", "-m", model, "--prompt-ids", "1,403", "-n", 30, "--ids", "--temp", 0)
    assert [int(x) for x in c.stdout.split()] == greedy
