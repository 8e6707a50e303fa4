#!/usr/bin/env python3
"""Concurrent streaming load against an OpenAI-style /v1/completions server.

Starts nothing itself: point it at a running `dsinfer serve` or `llama-server`.
N streams (threads) each send --requests requests back to back; every request is a
streaming /v1/completions call with temperature 0 and ignore_eos, so each one
generates exactly --max-tokens tokens on servers that honour ignore_eos.

Prints one JSON object:
  tok_per_s      aggregate decode throughput = all generated tokens / wall time of the run
  ttft_p50_ms,   time from sending the request to the first streamed token
  ttft_p99_ms
Stdlib only.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

PROMPTS = [
    "The history of the printing press begins",
    "Write a short story about a lighthouse keeper who",
    "Explain how a hash table works:",
    "Once upon a time, in a small village by the sea,",
    "The three most important ideas in thermodynamics are",
    "Here is a recipe for a simple tomato soup:",
    "In computer science, a compiler is",
    "The weather report for tomorrow says",
]


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(u, prompt, args):
    body = {
        "prompt": prompt,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    if args.model:
        body["model"] = args.model
    data = json.dumps(body).encode()
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=args.timeout)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=data,
                 headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    resp = conn.getresponse()
    if resp.status != 200:
        msg = resp.read()[:300]
        conn.close()
        raise RuntimeError(f"HTTP {resp.status}: {msg!r}")
    ttft = None
    chunks = 0
    usage_tokens = None
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            break
        ev = json.loads(payload)
        if ev.get("usage") and ev["usage"].get("completion_tokens") is not None:
            usage_tokens = ev["usage"]["completion_tokens"]
        for ch in ev.get("choices") or []:
            if ch.get("text"):
                chunks += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    conn.close()
    t1 = time.perf_counter()
    return {"ttft": ttft, "tokens": usage_tokens if usage_tokens is not None else chunks,
            "chunks": chunks, "usage": usage_tokens is not None, "latency": t1 - t0}


def run(args):
    u = urllib.parse.urlparse(args.url)
    results, errors = [], []
    lock = threading.Lock()
    start = threading.Barrier(args.streams + 1)

    def worker(s):
        start.wait()
        for i in range(args.requests):
            prompt = PROMPTS[(s * args.requests + i) % len(PROMPTS)]
            try:
                r = one_request(u, prompt, args)
                with lock:
                    results.append(r)
            except Exception as e:  # noqa: BLE001 - report, keep the others going
                with lock:
                    errors.append(str(e))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(args.streams)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    toks = sum(r["tokens"] for r in results)
    ttfts = [r["ttft"] * 1000 for r in results if r["ttft"] is not None]
    return {
        "url": args.url,
        "streams": args.streams,
        "requests": len(results),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "max_tokens": args.max_tokens,
        "tokens": toks,
        "tokens_from_usage": all(r["usage"] for r in results) if results else False,
        "short_requests": sum(1 for r in results if r["tokens"] != args.max_tokens),
        "wall_s": round(wall, 3),
        "tok_per_s": round(toks / wall, 2) if wall > 0 else None,
        "ttft_p50_ms": round(pct(ttfts, 50), 1) if ttfts else None,
        "ttft_p99_ms": round(pct(ttfts, 99), 1) if ttfts else None,
        "ttft_mean_ms": round(statistics.mean(ttfts), 1) if ttfts else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--streams", type=int, default=1, help="concurrent client streams")
    ap.add_argument("--requests", type=int, default=4, help="requests per stream, back to back")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--model", default=None, help="model field to send (optional)")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--warmup", type=int, default=0, help="sequential requests before timing")
    args = ap.parse_args()
    u = urllib.parse.urlparse(args.url)
    for i in range(args.warmup):
        one_request(u, PROMPTS[i % len(PROMPTS)], args)
    out = run(args)
    print(json.dumps(out))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
