#!/usr/bin/env python3
"""Tokenizer throughput: `dsinfer tokenize` against the Hugging Face `tokenizers` package (issue #3).

    .venv/bin/python bench/tokenizer-throughput.py [--tokenizer deepseek-v3 qwen2 llama3] [--rounds 3]

Corpus: ~/.cache/dsinfer/bench/corpus.txt (built once, deterministically, if absent) — >= 10 MiB of
Chinese, English and code text taken only from this machine and Debian packages:
  Chinese  fortunes-zh (/usr/share/games/fortunes/{chinese,tang300,song100}, ANSI colours stripped;
           `apt-get install fortunes-zh`), the zh_CN / zh_TW man pages (zcat), and the strings of
           tests/fixtures/tokenizer/corpus.json (mixed scripts, emoji, odd whitespace)
  English  man pages of sections 7 then 2 (roff source, zcat), capped
  code     C headers /usr/include/*.h, then Python stdlib /usr/lib/python3.N/*.py, each capped
Files are taken in sorted order, whole; the documents of the categories are interleaved evenly.
Composition and sha256 are printed and kept beside it in corpus.json.

Every round runs, per tokenizer, A then B (A B A B ...; medians are quoted):
  A  build/dsinfer tokenize --tokenizer DIR -f EMPTY  >/dev/null   (load time: process + tokenizer)
     build/dsinfer tokenize --tokenizer DIR -f CORPUS >/dev/null   (wall time)
  B  a fresh Python process with RAYON_NUM_THREADS=THREADS: Tokenizer.from_file (timed as HF load),
     tok.encode(text) over the whole file, then tok.encode_batch(lines) (lines keep their '\\n');
     only the encode calls are timed.
`dsinfer tokenize` is single-threaded, so THREADS is 1. Both sides use mode (ii) (special added
tokens stay text: HF encode_special_tokens=True, add_special_tokens=False), dsinfer's default.
ours MB/s = bytes / (corpus wall - empty wall) of the same round; "incl. load" uses the corpus wall.
MB = 10^6 bytes. Before the rounds the ids of the whole file are compared (ours vs HF encode).
Uses only the standard library and the venv's `tokenizers`.
"""
import argparse
import array
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.expanduser("~/.cache/dsinfer/bench")
TARGET = 10 * 2**20 + 2**19  # 10.5 MiB total: comfortably over 10 MB (and 10 MiB)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------------------------
# corpus

def _text(data):
    """UTF-8 text of a file's bytes, or None (not UTF-8, or binary)."""
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in s else s


def _files(pattern_dirs, suffix):
    out = []
    for d in pattern_dirs:
        if not os.path.isdir(d):
            continue
        for root, dirs, names in os.walk(d):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(root, n)
                if n.endswith(suffix) and os.path.isfile(p) and not os.path.islink(p):
                    out.append(p)
    return out


def _read(path):
    with open(path, "rb") as f:
        data = f.read()
    return _text(gzip.decompress(data) if path.endswith(".gz") else data)


def _take(paths, cap):
    """Whole files in order until `cap` UTF-8 bytes are reached: [(path, text)]."""
    docs, n = [], 0
    for p in paths:
        if n >= cap:
            break
        s = _read(p)
        if not s:
            continue
        if not s.endswith("\n"):
            s += "\n"
        docs.append((p, s))
        n += len(s.encode("utf-8"))
    return docs


def build_corpus(path):
    fortunes = "/usr/share/games/fortunes"
    zh_files = [os.path.join(fortunes, n) for n in ("chinese", "tang300", "song100")]
    if not all(os.path.isfile(p) for p in zh_files):
        sys.exit("tokenizer-throughput: the Chinese part needs Debian's fortunes-zh "
                 "(apt-get install fortunes-zh)")
    cats = {}
    # Chinese: one document per fortune, then the Chinese man pages; then the fixture strings.
    zh = []
    for p in zh_files:
        for i, entry in enumerate(ANSI.sub("", _read(p)).split("\n%\n")):
            if entry.strip():
                zh.append((f"{p}#{i}", entry.rstrip("\n") + "\n"))
    cats["zh-fortunes"] = zh
    cats["zh-man"] = _take(_files(["/usr/share/man/zh_CN", "/usr/share/man/zh_TW"], ".gz"), 1 << 40)
    fixture = os.path.join(ROOT, "tests/fixtures/tokenizer/corpus.json")
    fx = []
    if os.path.isfile(fixture):
        with open(fixture, encoding="utf-8") as f:
            texts = json.load(f)["texts"]
        for i, t in enumerate(texts):
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate cannot be written as UTF-8
                continue
            fx.append((f"{fixture}#{i}", t + "\n"))
    cats["fixtures-mixed"] = fx
    rest = max(TARGET - sum(len(s.encode("utf-8")) for d in cats.values() for _, s in d), 0)
    man = [p for p in _files(["/usr/share/man/man7", "/usr/share/man/man2"], ".gz")
           if re.search(r"\.[27]\.gz$", p)]  # the plain sections (not 7ssl, 3pm, ...)
    cats["en-man"] = _take(man, rest // 2)
    cats["code-c"] = _take([p for p in _files(["/usr/include"], ".h")
                            if os.path.dirname(p) == "/usr/include"], rest // 4)
    pylib = sorted(d for d in (os.path.join("/usr/lib", n) for n in os.listdir("/usr/lib"))
                   if re.fullmatch(r"/usr/lib/python3\.\d+", d))
    if not pylib:
        sys.exit("tokenizer-throughput: no /usr/lib/python3.N for the Python part")
    cats["code-python"] = _take([p for p in _files([pylib[0]], ".py")
                                 if os.path.dirname(p) == pylib[0]], rest // 4)

    # Interleave: each document sits at its category's cumulative fraction, so every stretch of
    # the file mixes the categories in about the same proportions.
    order, comp = [], {}
    for ci, (name, docs) in enumerate(cats.items()):
        sizes = [len(s.encode("utf-8")) for _, s in docs]
        total, acc = sum(sizes), 0
        if not docs:
            continue
        for (src, s), sz in zip(docs, sizes):
            order.append((acc / total, ci, s))
            acc += sz
        srcs = sorted({src.split("#")[0] for src, _ in docs})
        comp[name] = {"bytes": total, "documents": len(docs),
                      "chars": sum(len(s) for _, s in docs),
                      "sources": srcs if len(srcs) <= 8 else srcs[:3] + [f"... ({len(srcs)} files)"]}
    order.sort(key=lambda x: (x[0], x[1]))
    data = "".join(s for _, _, s in order).encode("utf-8")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    info = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "categories": comp}
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    return info


def corpus_info(path, rebuild):
    meta = os.path.splitext(path)[0] + ".json"
    if rebuild or not os.path.isfile(path) or not os.path.isfile(meta):
        print(f"building {path} ...", flush=True)
        return build_corpus(path)
    with open(meta) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# HF side: runs in its own process so that RAYON_NUM_THREADS takes effect and memory is freed

def hf_worker(tok_json, corpus, dump):
    from tokenizers import Tokenizer
    with open(corpus, encoding="utf-8", newline="") as f:
        text = f.read()
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(tok_json)
    t1 = time.perf_counter()
    tok.encode_special_tokens = True
    t2 = time.perf_counter()
    enc = tok.encode(text, add_special_tokens=False)
    t3 = time.perf_counter()
    ids = enc.ids
    n_single = len(ids)
    if dump:
        with open(dump, "wb") as f:
            array.array("i", ids).tofile(f)
    del enc, ids
    t4 = time.perf_counter()
    batch = tok.encode_batch(lines, add_special_tokens=False)
    t5 = time.perf_counter()
    n_batch = sum(len(e.ids) for e in batch)
    json.dump({"load": t1 - t0, "single": t3 - t2, "batch": t5 - t4,
               "tokens_single": n_single, "tokens_batch": n_batch, "lines": len(lines)}, sys.stdout)


def run_hf(tok_dir, corpus, threads, dump=None):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
    cmd = [sys.executable, os.path.abspath(__file__), "--hf-worker",
           os.path.join(tok_dir, "tokenizer.json"), corpus] + ([dump] if dump else [])
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)


# ---------------------------------------------------------------------------------------------
# our side

def run_ours(dsinfer, tok_dir, path):
    t0 = time.perf_counter()
    subprocess.run([dsinfer, "tokenize", "--tokenizer", tok_dir, "-f", path],
                   stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def ours_ids(dsinfer, tok_dir, path):
    out = subprocess.run([dsinfer, "tokenize", "--tokenizer", tok_dir, "-f", path],
                         stdout=subprocess.PIPE, check=True).stdout
    return array.array("i", map(int, out.split()))


def compare(ours, hf_path, corpus_bytes, tok_dir):
    hf = array.array("i")
    with open(hf_path, "rb") as f:
        hf.frombytes(f.read())
    if ours == hf:
        return True, f"identical ({len(ours)} ids)"
    i = next((k for k, (a, b) in enumerate(zip(ours, hf)) if a != b), min(len(ours), len(hf)))
    msg = f"DIFFER: ours {len(ours)} ids, HF {len(hf)} ids; first difference at id #{i}: " \
          f"ours {list(ours[max(i - 3, 0):i + 5])} HF {list(hf[max(i - 3, 0):i + 5])}"
    try:
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
        prefix = tok.decode(list(hf[:i]), skip_special_tokens=False)
        msg += f"; text near byte {len(prefix.encode('utf-8'))}: " \
               f"{corpus_bytes[len(prefix.encode('utf-8')):][:80].decode('utf-8', 'replace')!r}"
    except Exception:  # best effort only
        pass
    return False, msg


# ---------------------------------------------------------------------------------------------

def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--hf-worker":
        hf_worker(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", nargs="+", default=["deepseek-v3", "qwen2", "llama3"],
                    help="names under --tokenizers-dir (default: deepseek-v3 qwen2 llama3)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokenizers-dir", default=os.path.join(os.path.dirname(ROOT), "shared", "tokenizers"))
    ap.add_argument("--dsinfer", default=os.path.join(ROOT, "build", "dsinfer"))
    ap.add_argument("--corpus", default=os.path.join(CACHE, "corpus.txt"))
    ap.add_argument("--rebuild-corpus", action="store_true")
    ap.add_argument("--no-verify", action="store_true", help="skip the whole-file id comparison")
    ap.add_argument("--json", help="also write the raw timings here")
    a = ap.parse_args()
    threads = 1  # dsinfer tokenize is single-threaded; HF gets the same

    import tokenizers
    info = corpus_info(a.corpus, a.rebuild_corpus)
    with open(a.corpus, "rb") as f:
        data = f.read()
    size = len(data)
    sha = hashlib.sha256(data).hexdigest()
    if sha != info["sha256"]:
        sys.exit(f"{a.corpus}: sha256 differs from its corpus.json; run with --rebuild-corpus")
    print(f"corpus {a.corpus}: {size} bytes ({size / 1e6:.2f} MB), sha256 {sha[:16]}")
    for name, c in info["categories"].items():
        print(f"  {name:12s} {c['bytes']:>9d} bytes {100 * c['bytes'] / size:5.1f} %  "
              f"{c['documents']:>6d} docs  {', '.join(c['sources'])}")
    load = os.getloadavg()
    print(f"dsinfer {a.dsinfer}; tokenizers {tokenizers.__version__}; threads {threads}; "
          f"{os.cpu_count()} CPUs; load {load[0]:.2f}; {datetime.date.today()}", flush=True)

    empty = os.path.join(tempfile.mkdtemp(prefix="dsinfer-tokbench-"), "empty.txt")
    open(empty, "w").close()
    results = {}
    for name in a.tokenizer:
        tok_dir = os.path.join(a.tokenizers_dir, name)
        r = results[name] = {"ours_empty": [], "ours_file": [], "hf_load": [], "hf_single": [],
                             "hf_batch": [], "verify": None}
        if not a.no_verify:
            dump = empty + f".{name}.hf-ids"
            hf = run_hf(tok_dir, a.corpus, threads, dump)
            ok, msg = compare(ours_ids(a.dsinfer, tok_dir, a.corpus), dump, data, tok_dir)
            os.unlink(dump)
            r["verify"], r["tokens"] = msg, hf["tokens_single"]
            print(f"{name}: ids of the whole file, ours vs HF encode: {msg}", flush=True)
        for rnd in range(a.rounds):
            e = run_ours(a.dsinfer, tok_dir, empty)
            t = run_ours(a.dsinfer, tok_dir, a.corpus)
            hf = run_hf(tok_dir, a.corpus, threads)
            r["ours_empty"].append(e)
            r["ours_file"].append(t)
            r["hf_load"].append(hf["load"])
            r["hf_single"].append(hf["single"])
            r["hf_batch"].append(hf["batch"])
            r.setdefault("tokens", hf["tokens_single"])
            print(f"{name} round {rnd + 1}: ours empty {e:.3f} s, file {t:.3f} s "
                  f"(net {size / 1e6 / (t - e):.2f} MB/s) | HF load {hf['load']:.3f} s, "
                  f"encode {hf['single']:.3f} s ({size / 1e6 / hf['single']:.2f} MB/s), "
                  f"encode_batch {hf['batch']:.3f} s ({size / 1e6 / hf['batch']:.2f} MB/s, "
                  f"{hf['lines']} lines)", flush=True)

    med = statistics.median
    print(f"\nmedians of {a.rounds} rounds, {size / 1e6:.2f} MB, threads {threads}, MB = 10^6 bytes\n")
    print("| tokenizer | tokens | ours MB/s (load subtracted) | ours MB/s incl. load | HF encode MB/s "
          "| HF encode_batch MB/s | ours / HF encode | ours / HF batch | ours load s | HF load s | ids |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        net = med([t - e for t, e in zip(r["ours_file"], r["ours_empty"])])
        ours, ours_incl = size / 1e6 / net, size / 1e6 / med(r["ours_file"])
        single, batch = size / 1e6 / med(r["hf_single"]), size / 1e6 / med(r["hf_batch"])
        ids = "not checked" if r["verify"] is None else \
            ("identical" if r["verify"].startswith("identical") else "DIFFER")
        r["summary"] = {"ours_mbs": ours, "ours_incl_load_mbs": ours_incl, "hf_single_mbs": single,
                        "hf_batch_mbs": batch, "ours_load_s": med(r["ours_empty"]),
                        "hf_load_s": med(r["hf_load"])}
        print(f"| {name} | {r.get('tokens', '')} | {ours:.2f} | {ours_incl:.2f} | {single:.2f} | "
              f"{batch:.2f} | {ours / single:.2f}× | {ours / batch:.2f}× | {med(r['ours_empty']):.2f} | "
              f"{med(r['hf_load']):.2f} | {ids} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"corpus": {"path": a.corpus, "bytes": size, "sha256": sha, **info},
                       "threads": threads, "rounds": a.rounds, "loadavg": load,
                       "tokenizers_version": tokenizers.__version__, "host": platform.node(),
                       "date": str(datetime.date.today()), "results": results}, f, indent=1,
                      ensure_ascii=False)
    return 0 if all(r["verify"] in (None,) or r["verify"].startswith("identical")
                    for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
