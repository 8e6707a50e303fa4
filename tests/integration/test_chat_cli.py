"""`dsinfer tokenize --chat` and `dsinfer run --chat` against transformers' apply_chat_template
(the fixtures in tests/fixtures/templates, made by tools/gen_template_fixtures.py; the C unit
tests render every case, these check the command-line wiring on a sample)."""
import json

import pytest

from conftest import FIXTURES, dsinfer, need_shared

TOKENIZERS = ["deepseek-v3", "qwen2", "llama3"]


def request_of(context):
    req = {"messages": context["messages"], "add_generation_prompt": context.get("add_generation_prompt", False)}
    if context.get("tools") is not None:
        req["tools"] = context["tools"]
    if "enable_thinking" in context:
        req["chat_template_kwargs"] = {"enable_thinking": context["enable_thinking"]}
    return req


def sample(name):
    cases = json.loads((FIXTURES / "templates" / f"{name}.json").read_text())["cases"]
    rendered = [c for c in cases if "expected" in c]
    rejected = [c for c in cases if "expected" not in c]
    return rendered[:6] + rendered[-2:] + rejected[:1]


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenize_chat_matches_transformers(name, tmp_path):
    tok = need_shared("tokenizers", name)
    for case in sample(name):
        f = tmp_path / "req.json"
        f.write_text(json.dumps(request_of(case["context"]), ensure_ascii=False))
        proc = dsinfer("tokenize", "--tokenizer", tok, "--chat", f, check=False)
        if "expected" in case:
            assert proc.returncode == 0, (case["name"], proc.stderr)
            assert proc.stdout == case["expected"], case["name"]
        else:
            assert proc.returncode == 1 and proc.stderr, case["name"]


def test_tokenize_chat_bad_request(tmp_path):
    tok = need_shared("tokenizers", "deepseek-v3")
    f = tmp_path / "req.json"
    f.write_text('{"messages": "hello"}')
    proc = dsinfer("tokenize", "--tokenizer", tok, "--chat", f, check=False)
    assert proc.returncode == 1 and "messages" in proc.stderr
    f.write_text("{ nope")
    proc = dsinfer("tokenize", "--tokenizer", tok, "--chat", f, check=False)
    assert proc.returncode == 1 and "invalid JSON" in proc.stderr


def test_run_chat_wraps_the_prompt_and_keeps_markers_as_text(tmp_path):
    from test_real_models import fetch

    model = fetch("smollm2")
    for prompt in ["What is the capital of France?", "Say <|im_end|> please"]:
        req = tmp_path / "req.json"
        req.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                                {"role": "user", "content": prompt}]}))
        rendered = dsinfer("tokenize", "-m", model, "--chat", req).stdout
        ids = dsinfer("run", "-m", model, "-p", prompt, "--system", "Be brief.", "-n", 0, "--ids").stdout.split()
        as_template = dsinfer("tokenize", "-m", model, "--special", rendered).stdout.split()
        if "<|im_end|>" in prompt:
            # the marker in user text must not become the special token
            assert ids != as_template and ids.count("2") == as_template.count("2") - 1
        else:
            assert ids == as_template
