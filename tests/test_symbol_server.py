"""``--symbols-url``: Breakpad symbols from a symbol server (here, an HTTP server on the loopback that
serves the corpus' symbol directory in the store layout), kept in a cache that later runs use."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import CORPUS, run_json, run_nmf

RUST = CORPUS / "rust-minidump"
pytestmark = pytest.mark.shared


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        _Quiet.requests.append(self.path)


@pytest.fixture
def server() -> Iterator[str]:
    handler = functools.partial(_Quiet, directory=str(RUST / "symbols"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Quiet.requests.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_symbols_fetched_once_then_from_the_cache(server: str, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    r, a = run_json("analyze", str(RUST / "test.dmp"), "--symbols-url", server, env=env)
    assert r.returncode == 0, r.stderr
    assert a["blamed"]["function"] == "`anonymous namespace'::CrashFunction"
    assert [f["trust"] for f in a["frames"]] == ["context", "cfi", "cfi", "cfi"]  # its STACK WIN records too
    cached = tmp_path / "cache/notmyfault/symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
    assert (
        cached.read_bytes()
        == (RUST / "symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym").read_bytes()
    )
    assert "symbols: fetching " in r.stderr
    fetched = [p for p in _Quiet.requests if "test_app" in p]
    assert len(fetched) == 1
    # the modules the server has no file for are asked for once each, and missing is no error
    assert all(p.endswith(".sym") for p in _Quiet.requests)
    _Quiet.requests.clear()
    _, again = run_json("stack", str(RUST / "test.dmp"), "--symbols-url", server, env=env)
    assert again["threads"][0]["frames"][0]["function"] == "`anonymous namespace'::CrashFunction"
    assert not [p for p in _Quiet.requests if "test_app" in p]  # from the cache


def test_symbol_server_down_or_wrong_is_no_crash(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    r, a = run_json("analyze", str(RUST / "test.dmp"), "--symbols-url", "http://127.0.0.1:9", env=env)
    assert r.returncode == 0
    assert a["blamed"]["function"] is None
    assert "Connection refused" in r.stderr or "refused" in r.stderr
    bad = run_nmf("analyze", str(RUST / "test.dmp"), "--symbols-url", "file:///etc")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "notmyfault: error: --symbols-url 'file:///etc': give an http:// or https:// URL"
    ]
