"""reasoning_content for R1-template models through the official openai client, on a tiny model
written at test time (chain_model.py) that greedily answers with a known reasoning and answer.

Two templates: DeepSeek's R1-distill template, whose generation prompt already opens <think>
(the model then writes "Let me think.\\n</think>\\n\\nThe answer is 4."), and the same template
with the older generation prompt that does not (the model then writes "<think>\\n" itself, in
other tokens). In this tokenizer "</think>" is three tokens ("</", "think", ">\\n\\n"), so a
stream must split reasoning from content across tokens. As llama.cpp does, whitespace around
the reasoning and before the answer is dropped."""
import openai
import pytest
import requests

import chain_model
from test_serve import Server

REASONING, ANSWER = "Let me think.", "The answer is 4."
TEXT = REASONING + "\n</think>\n\n" + ANSWER
MESSAGES = [{"role": "user", "content": "What is 2+2?"}]
OPENS = "{{'<｜Assistant｜><think>\\n'}}"
# The generation prompt of DeepSeek-R1's template before it was changed to open <think>.
NOT_OPEN = "{{'<｜Assistant｜>'}}"


def answer_ids(tok):
    return tok.encode(TEXT, add_special_tokens=False).ids


def think_ids(tok):
    """"<think>\\n" in other tokens than the prompt's "<", "think", ">\\n", so that the model's
    chain never meets the same id twice."""
    return [tok.token_to_id(t) for t in ("<", "th", "ink")] + tok.encode(">\n", add_special_tokens=False).ids


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = chain_model.tokenizer()
    opened_prompt = tok.encode("<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n",
                               add_special_tokens=False).ids
    assert tok.encode("</think>", add_special_tokens=False).tokens == ["</", "think", ">"]
    assistant = tok.token_to_id("<｜Assistant｜>")
    think = think_ids(tok)
    assert think[-1] == opened_prompt[-1]  # both chains run on from ">\n"
    chains = [[opened_prompt[-1]] + answer_ids(tok) + [chain_model.EOS], [assistant] + think]
    template = chain_model.r1_template()
    assert OPENS in template
    root = tmp_path_factory.mktemp("r1")
    opened = chain_model.write_chain_model(root / "opened", chains, template)
    plain = chain_model.write_chain_model(root / "plain", chains, template.replace(OPENS, NOT_OPEN))
    servers = {
        "opened": Server(str(opened), "--alias", "r1", "--parallel", 2, "--ctx", 256, "-t", 1),
        "plain": Server(str(plain), "--alias", "r1", "--parallel", 2, "--ctx", 256, "-t", 1),
    }
    yield dict(tok=tok, prompt_ids=opened_prompt, think=think, servers=servers)
    for s in servers.values():
        s.stop()
        assert s.proc.returncode == 0, s.output()


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)


def stream(server, **kw):
    reasoning, content, finish, usage = [], [], None, None
    for chunk in client(server).chat.completions.create(model="r1", messages=MESSAGES, stream=True,
                                                        stream_options={"include_usage": True}, **kw):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            reasoning.append(getattr(c.delta, "reasoning_content", None) or "")
            content.append(c.delta.content or "")
            finish = c.finish_reason or finish
    return reasoning, content, finish, usage


@pytest.mark.parametrize("template", ["opened", "plain"])
def test_reasoning_split(setup, template):
    server = setup["servers"][template]
    r = client(server).chat.completions.create(model="r1", messages=MESSAGES)
    msg = r.choices[0].message
    assert msg.reasoning_content == REASONING
    assert msg.content == ANSWER
    assert r.choices[0].finish_reason == "stop"
    generated = answer_ids(setup["tok"]) + (setup["think"] if template == "plain" else [])
    prompt = setup["prompt_ids"][:-3] if template == "plain" else setup["prompt_ids"]  # without "<think>\n"
    assert r.usage.prompt_tokens == len(prompt)
    assert r.usage.completion_tokens == len(generated)


@pytest.mark.parametrize("template", ["opened", "plain"])
def test_reasoning_split_streaming(setup, template):
    server = setup["servers"][template]
    reasoning, content, finish, usage = stream(server)
    assert "".join(reasoning) == REASONING
    assert "".join(content) == ANSWER
    assert finish == "stop"
    # The reasoning arrives before the answer (an event that takes several tokens may end one
    # and begin the other).
    first_content = next(i for i, c in enumerate(content) if c)
    assert not any(reasoning[first_content + 1:])
    plain = template == "plain"
    assert usage.completion_tokens == len(answer_ids(setup["tok"])) + (len(setup["think"]) if plain else 0)


def test_stop_strings_with_reasoning(setup):
    server = setup["servers"]["opened"]
    r = client(server).chat.completions.create(model="r1", messages=MESSAGES, stop=["answer"])
    assert (r.choices[0].message.reasoning_content, r.choices[0].message.content) == (REASONING, "The ")
    assert r.choices[0].finish_reason == "stop"
    # A stop string inside the reasoning ends the choice there.
    r = client(server).chat.completions.create(model="r1", messages=MESSAGES, stop=[" think"])
    assert (r.choices[0].message.reasoning_content, r.choices[0].message.content) == ("Let me", "")
    reasoning, content, finish, _ = stream(server, stop=[" is 4"])
    assert ("".join(reasoning), "".join(content), finish) == (REASONING, "The answer", "stop")


def test_length_inside_reasoning(setup):
    r = client(setup["servers"]["opened"]).chat.completions.create(model="r1", messages=MESSAGES, max_tokens=5)
    # "Let", " me", " think", ".\n", "</": the partial tag is reasoning text once the answer ends.
    assert (r.choices[0].message.reasoning_content, r.choices[0].message.content) == (REASONING + "\n</", "")
    assert r.choices[0].finish_reason == "length"


def test_completions_keep_the_tags(setup):
    server = setup["servers"]["opened"]
    r = requests.post(server.url + "/v1/completions", json={"prompt": setup["prompt_ids"]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] == TEXT
