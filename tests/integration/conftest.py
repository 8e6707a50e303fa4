"""Shared helpers for the end-to-end tests: where the binary, the fixtures and ../shared are."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
# DSINFER_BIN may point at another build of the same sources (e.g. a sanitizer build).
BINARY = pathlib.Path(os.environ.get("DSINFER_BIN", REPO / "build" / "dsinfer"))
FIXTURES = REPO / "tests" / "fixtures"
SHARED = REPO.parent / "shared"


def need_shared(*parts):
    """Path under ../shared; skips the test when it is absent, except under CI=true."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {path} is missing")
        pytest.skip(f"{path} is not available")
    return path


def dsinfer(*args, check=True, timeout=300, **kw):
    """Runs build/dsinfer; returns the CompletedProcess (text mode)."""
    assert BINARY.exists(), "build/dsinfer is missing: run `make build` first"
    proc = subprocess.run([str(BINARY), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"dsinfer {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def stats_line(stderr):
    """The final key=value line of `run`'s stderr, as a dict."""
    last = stderr.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in last.split())
