"""/metrics latency histograms and outcome counters, read with prometheus_client's own text
parser: after N generation requests answered in full, each histogram counts N (time per output
token: one per choice of two or more tokens), buckets are cumulative, and the finish reasons and
HTTP status codes add up. Runs on the tiny chain model of chain_model.py (no download)."""
import math

import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import chain_model
from test_serve import Server

HISTOGRAMS = ["dsinfer_time_to_first_token_seconds", "dsinfer_e2e_request_latency_seconds",
              "dsinfer_time_per_output_token_seconds"]
TEXT = "Let me think.\n</think>\n\nThe answer is 4."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tok = chain_model.tokenizer()
    prompt = tok.encode("<｜Assistant｜><think>\n", add_special_tokens=False).ids
    chain = [prompt[-1]] + tok.encode(TEXT, add_special_tokens=False).ids + [chain_model.EOS]
    model = chain_model.write_chain_model(tmp_path_factory.mktemp("chain") / "m", [chain], chain_model.r1_template())
    s = Server(str(model), "--alias", "chain", "--parallel", 4, "--ctx", 256, "-t", 1)
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.output()


def scrape(server):
    text = requests.get(server.url + "/metrics", timeout=5).text
    return {f.name: f for f in text_string_to_metric_families(text)}


def histogram(families, name):
    f = families[name]
    assert f.type == "histogram"
    buckets = [(float(s.labels["le"]), s.value) for s in f.samples if s.name == name + "_bucket"]
    (total,) = [s.value for s in f.samples if s.name == name + "_count"]
    (sum_,) = [s.value for s in f.samples if s.name == name + "_sum"]
    return buckets, total, sum_


def labelled(families, name, label):
    return {s.labels[label]: s.value for s in families[name].samples if label in s.labels}


def test_latency_histograms_and_outcomes(server):
    before = scrape(server)
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=60)
    messages = [{"role": "user", "content": "What is 2+2?"}]
    for _ in range(3):
        assert client.chat.completions.create(model="chain", messages=messages).choices[0].finish_reason == "stop"
    for _ in range(2):
        chunks = list(client.chat.completions.create(model="chain", messages=messages, stream=True))
        assert chunks[-1].choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model="chain", messages=messages, max_tokens=3)
    assert r.choices[0].finish_reason == "length"
    r = client.completions.create(model="chain", prompt="<think>\n")
    assert r.choices[0].finish_reason == "stop"
    n = 7
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="another", messages=messages)
    assert requests.post(server.url + "/v1/completions", data=b"{", timeout=5).status_code == 400
    after = scrape(server)

    for name in HISTOGRAMS:
        b0, count0, sum0 = histogram(before, name)
        buckets, count, total = histogram(after, name)
        les = [le for le, _ in buckets]
        assert les == sorted(les) and les[-1] == math.inf and len(set(les)) == len(les)
        values = [v for _, v in buckets]
        assert values == sorted(values), f"{name}: buckets are not cumulative: {values}"
        assert values[-1] == count
        assert count - count0 == n, name
        assert total > sum0
    ttft = histogram(after, HISTOGRAMS[0])[2] - histogram(before, HISTOGRAMS[0])[2]
    e2e = histogram(after, HISTOGRAMS[1])[2] - histogram(before, HISTOGRAMS[1])[2]
    assert 0 < ttft <= e2e

    f0, f1 = (labelled(m, "dsinfer_request_success", "finish_reason") for m in (before, after))
    assert {k: f1[k] - f0[k] for k in f1} == {"stop": 6, "length": 1, "abort": 0, "error": 0}
    c0, c1 = (labelled(m, "dsinfer_http_responses", "code") for m in (before, after))
    assert c1.get("404", 0) - c0.get("404", 0) == 1
    assert c1.get("400", 0) - c0.get("400", 0) == 1
    assert c1["200"] - c0["200"] >= n
    # The older totals by class agree with the codes.
    assert after["dsinfer_http_responses_4xx"].samples[0].value == sum(v for k, v in c1.items() if k.startswith("4"))
