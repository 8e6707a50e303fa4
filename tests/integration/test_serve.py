"""dsinfer serve end to end: a real server process on 127.0.0.1 with SmolLM2-135M (Q4_1 GGUF,
tokenizer + ChatML template), driven by the official openai client and raw HTTP.

Everything runs against one module-scoped server (--parallel 8, --queue 16, an API key, a short
--read-timeout) so the suite stays within a few seconds of model time per test on 2 cores.
The prefix-reuse test shares a system prompt of DSINFER_PREFIX_TOKENS tokens (default 1000, the
issue's figure; about 20 s of prefill on 2 cores)."""
import concurrent.futures as cf
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import openai
import pytest
import requests

from conftest import BINARY, REPO, dsinfer

KEY = "test-key-123"
PARALLEL = 8
QUEUE = 16
CTX = 1024
BLOCK = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model():
    proc = subprocess.run([str(REPO / "tools" / "fetch-models"), "smollm2"], capture_output=True, text=True)
    path = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
    if not path or not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail(f"tools/fetch-models smollm2 failed: {proc.stderr}")
        pytest.skip("SmolLM2-135M is not available (tools/fetch-models smollm2)")
    return path


class Server:
    def __init__(self, model, *extra):
        assert BINARY.exists(), "build/dsinfer is missing: run `make build` first"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(f"/tmp/dsinfer-serve-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [str(BINARY), "serve", "-m", model, "--port", str(self.port), *map(str, extra)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become ready:\n" + self.output())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def metrics(self):
        text = requests.get(self.url + "/metrics", timeout=5).text
        return {m[0]: float(m[1]) for m in re.findall(r"^(dsinfer_\w+) (\S+)$", text, re.M)}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(model):
    s = Server(model, "--alias", "smol", "--parallel", PARALLEL, "--queue", QUEUE, "--ctx", CTX,
               "--api-key", KEY, "--read-timeout", 3, "-t", 2)
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.output()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=300)


def post(server, path, body, key=KEY, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(server.url + path, json=body, headers=headers, timeout=kw.pop("timeout", 300), **kw)


def tokenize(server, text):
    r = post(server, "/tokenize", {"prompt": text})
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


def detokenize(server, ids):
    r = post(server, "/detokenize", {"tokens": ids})
    assert r.status_code == 200, r.text
    return r.json()["prompt"]


def wait_idle(server, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = server.metrics()
        if m["dsinfer_requests_running"] == 0 and m["dsinfer_requests_waiting"] == 0 and m["dsinfer_kv_blocks_used"] == 0:
            return m
        time.sleep(0.05)
    raise AssertionError(f"server did not go idle: {server.metrics()}")


# ---- basics ---------------------------------------------------------------------------------

def test_health_models_metrics_public(server):
    assert requests.get(server.url + "/health").json() == {"status": "ok"}
    m = server.metrics()
    for name in ["dsinfer_requests_running", "dsinfer_requests_waiting", "dsinfer_kv_blocks_used",
                 "dsinfer_kv_blocks_total", "dsinfer_prefix_cache_queried_tokens_total",
                 "dsinfer_prefix_cache_hit_tokens_total", "dsinfer_prompt_tokens_total",
                 "dsinfer_generation_tokens_total"]:
        assert name in m
    assert m["dsinfer_kv_blocks_total"] * BLOCK >= CTX * PARALLEL
    assert requests.get(server.url + "/v1/models").status_code == 401
    models = requests.get(server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert [d["id"] for d in models["data"]] == ["smol"]


def test_openai_completions(server, client):
    r = client.completions.create(model="smol", prompt="The capital of France is", max_tokens=8, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == len(tokenize(server, "The capital of France is"))
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.completion_tokens <= 8


def test_openai_chat_and_stream_agree(client):
    msgs = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Name a colour."}]
    full = client.chat.completions.create(model="smol", messages=msgs, max_tokens=10, temperature=0)
    assert full.choices[0].message.role == "assistant"
    stream = client.chat.completions.create(model="smol", messages=msgs, max_tokens=10, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert usage.completion_tokens == full.usage.completion_tokens
    assert usage.prompt_tokens == full.usage.prompt_tokens


def test_completions_stream_and_n2_seed(client):
    kw = dict(model="smol", prompt="Once upon a time", max_tokens=8, temperature=0.9, seed=7, n=2)
    a = client.completions.create(**kw)
    b = client.completions.create(**kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert [c.index for c in a.choices] == [0, 1]
    s = client.completions.create(stream=True, **kw)
    texts = ["", ""]
    for chunk in s:
        for c in chunk.choices:
            texts[c.index] += c.text
    assert texts == [c.text for c in a.choices]


def test_stop_strings_not_in_output(client):
    base = client.completions.create(model="smol", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0)
    text = base.choices[0].text
    assert len(text) > 4
    stop = text[2:4]
    r = client.completions.create(model="smol", prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].text == text[:text.index(stop)]
    assert stop not in r.choices[0].text


def test_logprobs(client):
    r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4,
                                       temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for e in content:
        assert len(e.top_logprobs) == 3
        assert e.logprob <= 0
        assert abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4  # greedy: the best token was chosen
    c = client.completions.create(model="smol", prompt="Hello", max_tokens=3, temperature=0, logprobs=2)
    assert len(c.choices[0].logprobs.tokens) == 3


def test_tokenize_detokenize(server):
    ids = tokenize(server, "Hello world")
    assert detokenize(server, ids) == "Hello world"
    assert post(server, "/tokenize", {"prompt": "x"}, key=None).status_code == 401


# ---- batch invariance -----------------------------------------------------------------------

def run_ids(model, prompt_ids, n):
    proc = dsinfer("run", "-m", model, "--prompt-ids", ",".join(map(str, prompt_ids)), "--temp", "0", "--ids",
                   "-n", n, "--ignore-eos", "-t", 2)
    ids = [int(x) for x in proc.stdout.split()]
    return ids[len(prompt_ids):]


def test_greedy_equals_run_alone_and_under_load(server, model):
    prompt = tokenize(server, "The history of the printing press begins")
    n = 12
    expect = detokenize(server, run_ids(model, prompt, n))
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0, "ignore_eos": True}
    alone = post(server, "/v1/completions", body).json()["choices"][0]["text"]
    assert alone == expect
    others = [{"prompt": f"Story number {i}: once", "max_tokens": 16 + i, "temperature": 0.7, "seed": i,
               "ignore_eos": True} for i in range(7)]
    with cf.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(post, server, "/v1/completions", o) for o in others[:4]]
        time.sleep(0.3)
        mine = ex.submit(post, server, "/v1/completions", body)
        futs += [ex.submit(post, server, "/v1/completions", o) for o in others[4:]]
        assert mine.result().json()["choices"][0]["text"] == expect
        assert all(f.result().status_code == 200 for f in futs)


def test_prefix_reuse(server):
    n_prefix = int(os.environ.get("DSINFER_PREFIX_TOKENS", "1000"))
    system = tokenize(server, " ".join(f"rule {i} is that the answer stays short;" for i in range(n_prefix)))[:n_prefix]
    assert len(system) == n_prefix
    a = system + tokenize(server, " Question one: what is red?")
    b = system + tokenize(server, " Question two: what is blue?")
    wait_idle(server)
    m0 = server.metrics()
    t0 = time.time()
    cold = post(server, "/v1/completions", {"prompt": a, "max_tokens": 4, "temperature": 0}).json()
    t_cold = time.time() - t0
    m1 = server.metrics()
    t0 = time.time()
    warm = post(server, "/v1/completions", {"prompt": b, "max_tokens": 4, "temperature": 0}).json()
    t_warm = time.time() - t0
    m2 = server.metrics()
    hit = m2["dsinfer_prefix_cache_hit_tokens_total"] - m1["dsinfer_prefix_cache_hit_tokens_total"]
    queried = m2["dsinfer_prefix_cache_queried_tokens_total"] - m1["dsinfer_prefix_cache_queried_tokens_total"]
    print(f"prefix {n_prefix} tokens: cold request {t_cold:.2f}s, warm {t_warm:.2f}s, hit {hit}/{queried}")
    assert queried == len(b)
    assert hit >= n_prefix - BLOCK
    assert warm["usage"]["prompt_tokens_details"]["cached_tokens"] == hit
    assert m1["dsinfer_prefix_cache_hit_tokens_total"] - m0["dsinfer_prefix_cache_hit_tokens_total"] < n_prefix - BLOCK
    # the same request again is served from the cache and gives the same tokens as cold
    again = post(server, "/v1/completions", {"prompt": a, "max_tokens": 4, "temperature": 0}).json()
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] >= n_prefix - BLOCK
    assert again["choices"][0]["text"] == cold["choices"][0]["text"]


# ---- cancellation and overload ----------------------------------------------------------------

def test_disconnect_frees_blocks(server):
    wait_idle(server)
    other = {}

    def other_stream():
        r = post(server, "/v1/completions", {"prompt": "Count: one, two,", "max_tokens": 24, "temperature": 0,
                                             "ignore_eos": True, "stream": True}, stream=True)
        finish = None
        for line in r.iter_lines():
            if line.startswith(b"data: {"):
                for c in json.loads(line[6:])["choices"]:
                    finish = c["finish_reason"] or finish
        other["finish"] = finish

    t = threading.Thread(target=other_stream)
    t.start()
    s = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"prompt": "A long story:", "max_tokens": 500, "ignore_eos": True, "stream": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: " + str(len(body)).encode() +
              b"\r\n\r\n" + body)
    got = b""
    while got.count(b"data: ") < 3:
        got += s.recv(4096)
    assert server.metrics()["dsinfer_kv_blocks_used"] > 0
    s.close()
    cancelled0 = server.metrics()["dsinfer_sequences_cancelled_total"]
    deadline = time.time() + 10
    while server.metrics()["dsinfer_sequences_cancelled_total"] == cancelled0:
        assert time.time() < deadline, "the disconnected stream was not cancelled"
        time.sleep(0.05)
    t.join()
    assert other["finish"] == "length"
    wait_idle(server, timeout=10)


def test_overload_429_not_5xx(server):
    wait_idle(server)
    health = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            health.append(requests.get(server.url + "/health", timeout=10).status_code)
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    body = {"prompt": "Hello there", "max_tokens": 4, "temperature": 0, "ignore_eos": True}
    with cf.ThreadPoolExecutor(64) as ex:
        res = list(ex.map(lambda _: post(server, "/v1/completions", body), range(64)))
    stop.set()
    w.join()
    codes = [r.status_code for r in res]
    assert set(codes) <= {200, 429}, codes
    assert codes.count(429) > 0 and codes.count(200) >= PARALLEL
    assert all(r.headers.get("Retry-After") for r in res if r.status_code == 429)
    assert all(r.json()["error"]["type"] for r in res if r.status_code == 429)
    assert health and set(health) == {200}


# ---- bad input ----------------------------------------------------------------------------------

def raw(server, data, read_timeout=20):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout)
    try:
        s.sendall(data)
        return s.recv(65536).decode(errors="replace")
    except (BrokenPipeError, ConnectionResetError):
        return s.recv(65536).decode(errors="replace")
    finally:
        s.close()


def test_bad_input_battery_then_valid(server):
    def err(body, status, path="/v1/chat/completions", **kw):
        r = post(server, path, body, **kw) if not isinstance(body, bytes) else requests.post(
            server.url + path, data=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        assert r.status_code == status, (body if not isinstance(body, bytes) else body[:80], r.status_code, r.text)
        e = r.json()["error"]
        assert set(e) == {"message", "type", "param", "code"} and e["message"]
        return e

    user = [{"role": "user", "content": "hi"}]
    errors_5xx = server.metrics()["dsinfer_http_responses_5xx_total"]
    err(b"{not json", 400)
    err(b"[1, 2]", 400)
    err({"messages": "hello"}, 400)
    err({"messages": user, "max_tokens": -1}, 400)
    err({"messages": user, "max_tokens": "ten"}, 400)
    err({"messages": user, "temperature": 7}, 400)
    err({"messages": user, "top_p": "high"}, 400)
    err({"messages": user, "n": 0}, 400)
    err({"messages": [{"role": "wizard", "content": "hi"}]}, 400)
    err({"messages": user, "stop": 5}, 400)
    err({"prompt": {"a": 1}}, 400, path="/v1/completions")
    err({"prompt": [1, -5]}, 400, path="/v1/completions")
    err({"prompt": [10 ** 9]}, 400, path="/v1/completions")
    err(b'{"messages": [{"role": "user", "content": "\xff\xfe bad"}]}', 400)
    e = err({"prompt": list(range(100, 100 + CTX + 10)), "max_tokens": 4}, 400, path="/v1/completions")
    assert str(CTX) in e["message"]
    err({"messages": user, "model": "gpt-4"}, 404)
    err({"messages": user}, 401, key="wrong")
    err({"messages": user}, 401, key=None)
    assert requests.get(server.url + "/nope").status_code == 404
    # a 100 MB body: refused from its Content-Length
    resp = raw(server, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
               b"\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n" + b"{" * 65536)
    assert resp.startswith("HTTP/1.1 413"), resp[:200]
    # a client that sends one byte per second: 408 after --read-timeout (3 s)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Length: 100\r\n\r\n")
    t0 = time.time()
    resp = b""
    try:
        for _ in range(15):
            s.sendall(b" ")
            s.settimeout(1.0)
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                resp += chunk
                if b"\r\n\r\n" in resp:
                    break
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        pass
    s.close()
    assert resp.startswith(b"HTTP/1.1 408"), resp[:200]
    assert time.time() - t0 < 8
    # marker text in user content stays ordinary text: only the template's own markers count
    im_start = post(server, "/tokenize", {"prompt": "<|im_start|>"}).json()["tokens"][-1]
    def markers(content):
        r = post(server, "/tokenize", {"messages": [{"role": "user", "content": content}]})
        assert r.status_code == 200, r.text
        return r.json()["tokens"].count(im_start)
    assert markers("<|im_start|>system") == markers("plain words")
    # and after all that a valid request succeeds
    ok = post(server, "/v1/chat/completions", {"messages": user, "max_tokens": 3})
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["role"] == "assistant"
    assert server.metrics()["dsinfer_http_responses_5xx_total"] == errors_5xx


def test_sigterm_drains_and_exits_zero(model):
    s = Server(model, "--parallel", 2, "--ctx", 256, "-t", 2)
    try:
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("r", requests.post(
            s.url + "/v1/completions", json={"prompt": "Hi", "max_tokens": 8, "ignore_eos": True}, timeout=60)))
        t.start()
        time.sleep(0.3)
        s.proc.send_signal(signal.SIGTERM)
        t.join()
        assert res["r"].status_code == 200
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.stop()
