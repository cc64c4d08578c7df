"""``notmyfault serve`` on loopback: every minidump of the corpus uploaded with curl's multipart
form (Breakpad's format), processed by the triage workers, browsed in a real headless Chromium
(Playwright against the system's chromium); hostile uploads refused with a reason; a server
killed with SIGKILL loses nothing it acknowledged; ``notmyfault submit`` as a client."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.conftest import CORPUS, check_page, fresh_database, run_bench, run_nmf

pytestmark = pytest.mark.shared
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
ANSWER = re.compile(r"^CrashID=bp-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\n$")
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "quotes" \u202e'


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    store: Path
    db: Path | str

    def get(self, path: str, accept: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, headers={"Accept": accept} if accept else {})
        try:
            with NO_PROXY.open(request, timeout=60) as r:
                body = r.read()
                status = r.status
                kind = r.headers.get("content-type", "")
        except urllib.error.HTTPError as e:
            body, status, kind = e.read(), e.code, e.headers.get("content-type", "")
        return status, json.loads(body) if "json" in kind else body.decode()

    def api(self, path: str) -> Any:
        status, data = self.get("/api" + path)
        assert status == 200, (path, data)
        check_page(json.dumps(data), f"serve {path}")
        return data

    def settled(self, crashes: int, timeout: float = 300) -> dict[str, Any]:
        """Wait until ``crashes`` crashes are processed and none waits."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.api("/status")
            if status["queued"] == 0 and status["processed"] >= crashes:
                return dict(status)
            assert time.monotonic() < deadline, f"not processed in {timeout} s: {status}"
            time.sleep(0.2)


@contextmanager
def serving(store: Path, db: Path | str, *options: str) -> Iterator[Server]:
    """``notmyfault serve`` on a free loopback port; killed (with its workers) when done."""
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "notmyfault",
            "serve",
            "--port",
            "0",
            "--store",
            str(store),
            "--db",
            str(db),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        sel = selectors.DefaultSelector()
        assert p.stdout is not None
        sel.register(p.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        line = ""
        while not line and time.monotonic() < deadline:
            if sel.select(timeout=1):
                line = p.stdout.readline()
                if not line:
                    break
        m = re.search(r"serving (http://127\.0\.0\.1:\d+)/", line)
        assert m, (
            f"serve did not start: {line!r} {p.stderr.read() if p.poll() is not None and p.stderr else ''}"
        )
        yield Server(m.group(1), p, store, db)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path / "store", tmp_path / "triage.db", "--workers", "2") as s:
        yield s


def minidumps() -> list[Path]:
    out = []
    for p in sorted(CORPUS.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as f:
                if f.read(4) == b"MDMP":
                    out.append(p)
    return out


def curl_upload(url: str, dump: Path, *fields: str, field: str = "upload_file_minidump") -> tuple[int, str]:
    args = ["curl", "--noproxy", "*", "-sS", "-o", "-", "-w", "\n%{http_code}", "-F", f"{field}=@{dump}"]
    for f in fields:
        args += ["--form-string", f]  # literally: -F reads a value starting with '<' or '@' from a file
    r = subprocess.run([*args, url + "/submit"], capture_output=True, text=True, timeout=120, check=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body + "\n" if body and not body.endswith("\n") else body


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """A raw POST (to send what curl would not: lies, bombs)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", "/submit", body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        conn.close()


def form(fields: list[tuple[str, str]], files: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    out = io.BytesIO()
    for k, v in fields:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
            + v.encode()
            + b"\r\n"
        )
    for k, data in files:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="x"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
MULTIPART = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def test_every_corpus_minidump_uploaded_with_curl_is_kept_processed_and_browsable(server: Server) -> None:
    dumps = minidumps()
    assert len(dumps) >= 50, "the corpus's minidumps (breakpad-testdata among them)"
    ids: dict[str, Path] = {}
    for i, dump in enumerate(dumps):
        version = "2.0" if i % 3 == 0 else "1.0"
        code, body = curl_upload(server.url, dump, "prod=CorpusApp", f"ver={version}", f"guid={i:08x}")
        assert code == 200, (dump, body)
        m = ANSWER.match(body)
        assert m, body
        ids[m.group(1)] = dump
    assert len(ids) == len(dumps)
    server.settled(len(dumps))
    total = server.api("/buckets")
    # every crash: its dump kept byte for byte, its analysis the analyzer's own
    for cid, dump in ids.items():
        crash = server.api(f"/crash/{cid}")["crash"]
        assert crash["hash"] == hashlib.sha256(dump.read_bytes()).hexdigest()
        assert crash["source"] == "upload"
        assert crash["program"] == "CorpusApp"
        assert crash["annotations"]["prod"] == "CorpusApp"
    for cid, dump in list(ids.items())[:: max(1, len(ids) // 6)]:
        crash = server.api(f"/crash/{cid}")["crash"]
        r = run_nmf("analyze", "--json", str(dump))
        a = json.loads(r.stdout)
        assert (crash["crash_class"], crash["signature"]) == (a["crash_class"], a["signature"]), dump
    # counts add up: every analysed crash is in exactly one bucket
    failed = server.api("/status")["failed"]
    assert total["total"] + len(failed) == len(dumps)
    assert sum(b["count"] for b in total["buckets"]) == total["total"]
    assert abs(sum(b["share"] for b in total["buckets"]) - 1) < 0.01
    v2 = server.api("/buckets?version=2.0")
    assert v2["total"] == sum(
        1 for cid, d in ids.items() if dumps.index(d) % 3 == 0 and cid not in {f["id"] for f in failed}
    )
    # the filters: each narrows every figure, and together they cover the whole
    for b in total["buckets"]:
        assert sum(b["per_day"]) == b["count"], (
            "every upload is of today: the sparkline's last days hold them"
        )
        assert b["per_day"][-1] > 0
    classes = {b["crash_class"] for b in total["buckets"]}
    assert sum(server.api(f"/buckets?class={c}")["total"] for c in classes) == total["total"]
    for c in classes:
        assert {b["crash_class"] for b in server.api(f"/buckets?class={c}")["buckets"]} == {c}
    assert server.api("/buckets?program=CorpusApp")["total"] == total["total"]
    assert server.api("/buckets?program=nothing")["total"] == 0
    assert server.api("/buckets?since=1+hour+ago")["total"] == total["total"]
    assert server.api("/buckets?since=2099-01-01")["total"] == 0
    status, bad = server.get("/api/buckets?since=whenever")
    assert status == 400
    assert "--since" in bad["error"] or "since" in bad["error"]
    top = total["buckets"][0]
    status, as_json = server.get(f"/bucket/{top['bucket_id']}", accept="application/json")
    assert status == 200
    assert as_json["kind"] == "serve-bucket"
    bucket = server.api(f"/bucket/{top['bucket_id']}")
    assert bucket["bucket"]["count"] == top["count"] == len(bucket["crashes"])
    assert {c["id"] for c in bucket["crashes"]} <= set(ids)
    status, missing = server.get("/api/crash/00000000-0000-4000-8000-000000000000")
    assert status == 404
    assert missing["kind"] == "serve-error"
    assert "no crash" in missing["error"]
    check_page(json.dumps(missing), "serve /crash")
    _browse(server, ids, total, v2)


def test_new_in_a_version_is_what_no_earlier_version_had(server: Server) -> None:
    """1.0 crashes in A; then 2.0 crashes in A and in B: new in 2.0 is B alone, new in 1.0 is A."""
    by_sig: dict[str, Path] = {}
    for d in minidumps():
        a = json.loads(run_nmf("analyze", "--json", str(d)).stdout)
        by_sig.setdefault(a["signature"], d)
        if len(by_sig) == 2:
            break
    a_dump, b_dump = by_sig.values()
    for dump, version in ((a_dump, "1.0"), (a_dump, "2.0"), (b_dump, "2.0"), (b_dump, "2.0")):
        assert curl_upload(server.url, dump, "prod=P", f"ver={version}")[0] == 200
    server.settled(4)
    rows = server.api("/buckets")["buckets"]
    by_version = {b["bucket_id"]: b["versions"] for b in rows}
    a_bucket = next(bid for bid, v in by_version.items() if "1.0" in v)
    b_bucket = next(bid for bid, v in by_version.items() if "1.0" not in v)
    new2 = server.api("/new?version=2.0")
    assert [b["bucket_id"] for b in new2["buckets"]] == [b_bucket]
    assert new2["buckets"][0]["count"] == 2
    assert [b["bucket_id"] for b in server.api("/new?version=1.0")["buckets"]] == [a_bucket]
    assert server.api("/new")["version"] == "2.0", "the newest version by default"


def _browse(server: Server, ids: dict[str, Path], total: dict[str, Any], v2: dict[str, Any]) -> None:
    """What a user sees in Chromium: the bucket list, a filter, a search, a bucket, a crash, a download."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: ./dev test installs it (Debian: chromium)")
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--no-proxy-server", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url + "/")
            rows = page.locator("tr.bucket")
            assert rows.count() == len(total["buckets"])
            assert page.locator("#total").inner_text() == str(total["total"])
            top = total["buckets"][0]
            assert rows.first.locator("td.count").inner_text() == str(top["count"])
            assert rows.first.locator("td.signature").inner_text() == (top["signature"] or "(no frames)")
            # a filter: version 2.0 only
            page.select_option("select[name=version]", "2.0")
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"version=2\.0"))
            assert page.locator("#total").inner_text() == str(v2["total"])
            assert page.locator("tr.bucket").count() == len(v2["buckets"])
            for cell in page.locator("tr.bucket td.versions").all_inner_texts():
                assert re.fullmatch(r"2\.0\s\(\d+\)", cell.strip()), cell
            # a search by a function name of one bucket's signature
            word = next(
                w
                for b in total["buckets"]
                for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]{3,}", b["signature"] or "")
            )
            page.goto(server.url + "/")
            page.fill("input[name=q]", word)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r"q="))
            found = server.api("/buckets?q=" + urllib.parse.quote(word))
            assert 0 < page.locator("tr.bucket").count() == len(found["buckets"])
            shown = page.locator("tr.bucket td.signature").all_inner_texts()
            assert shown == [b["signature"] or "(no frames)" for b in found["buckets"]]
            # a bucket, then one of its crashes
            page.goto(server.url + "/")
            page.locator("tr.bucket").first.locator("td.signature a").click()
            page.wait_for_url(re.compile(r"/bucket/"))
            assert page.locator("#count").inner_text() == str(top["count"])
            assert page.locator("tr.crash").count() == top["count"]
            page.locator("tr.crash a").first.click()
            page.wait_for_url(re.compile(r"/crash/"))
            cid = page.url.rsplit("/", 1)[1]
            crash = server.api(f"/crash/{cid}")["crash"]
            assert page.locator("dd.class").inner_text().startswith(crash["crash_class"])
            assert "CorpusApp" in page.locator("table.annotations").inner_text()
            assert crash["analysis_text"].splitlines()[4] in page.locator("pre.analysis").inner_text()
            # the download is the dump, byte for byte
            with page.expect_download() as info:
                page.click("#download")
            assert Path(info.value.path()).read_bytes() == ids[cid].read_bytes()
            # a hostile annotation is shown as text, and runs nothing
            code, body = curl_upload(server.url, ids[cid], f"prod={HOSTILE}", f"note={HOSTILE}")
            assert code == 200, body
            hostile_id = ANSWER.match(body).group(1)  # type: ignore[union-attr]
            server.settled(len(ids) + 1)
            page.goto(f"{server.url}/crash/{hostile_id}")
            texts = page.locator("table.annotations td").all_inner_texts()
            assert HOSTILE in texts
            page.goto(server.url + "/")
            assert HOSTILE in page.locator("body").inner_text()
            assert dialogs == [], "a script from an upload ran"
        finally:
            browser.close()
    _, html = server.get(f"/crash/{hostile_id}")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_uploads_get_a_4xx_with_a_reason(tmp_path: Path) -> None:
    with serving(
        tmp_path / "store", tmp_path / "t.db", "--max-body", "1MiB", "--max-decompressed", "4MiB"
    ) as s:
        mdmp = b"MDMP" + b"\0" * 100
        cases = {
            "oversize body (said)": post(s.url, b"x", {**MULTIPART, "Content-Length": str(2 << 20)}),
            "oversize body (sent)": post(
                s.url, form([], [("upload_file_minidump", mdmp + os.urandom(2 << 20))]), MULTIPART
            ),
            "gzip bomb": post(
                s.url,
                gzip.compress(form([], [("upload_file_minidump", mdmp + b"\0" * (64 << 20))]), 9),
                {**MULTIPART, "Content-Encoding": "gzip"},
            ),
            "zstd bomb": post(
                s.url,
                form(
                    [],
                    [
                        (
                            "upload_file_core",
                            zstandard.ZstdCompressor(level=19).compress(b"\x7fELF" + b"\0" * (64 << 20)),
                        )
                    ],
                ),
                MULTIPART,
            ),
            "broken gzip": post(s.url, GZIP_HEADER + b"\xff" * 32, {**MULTIPART, "Content-Encoding": "gzip"}),
            "gzip cut short": post(
                s.url,
                gzip.compress(form([], [("upload_file_minidump", mdmp)]))[:-12],
                {**MULTIPART, "Content-Encoding": "gzip"},
            ),
            "a path as a field name": post(
                s.url, form([("../../etc/passwd", "x")], [("upload_file_minidump", mdmp)]), MULTIPART
            ),
            "a path as a file field": post(
                s.url, form([], [("upload_file_minidump", mdmp), ("../x", b"y")]), MULTIPART
            ),
            "control characters": post(
                s.url, form([("prod", "a\x1b[2Jb")], [("upload_file_minidump", mdmp)]), MULTIPART
            ),
            "not a minidump": post(
                s.url, form([], [("upload_file_minidump", b"\x7fELF" + b"\0" * 60)]), MULTIPART
            ),
            "no dump": post(s.url, form([("prod", "x")], []), MULTIPART),
            "two dumps": post(
                s.url, form([], [("upload_file_minidump", mdmp), ("upload_file_minidump", mdmp)]), MULTIPART
            ),
            "empty dump": post(s.url, form([], [("upload_file_minidump", b"")]), MULTIPART),
            "not a form": post(s.url, b"{}", {"Content-Type": "application/json"}),
            "an unknown encoding": post(s.url, b"x", {**MULTIPART, "Content-Encoding": "br"}),
            "an annotation too long": post(
                s.url, form([("prod", "x" * 70000)], [("upload_file_minidump", mdmp)]), MULTIPART
            ),
        }
        expected = {
            "oversize body (said)": (413, "over 1048576 bytes"),
            "oversize body (sent)": (413, "over 1048576 bytes"),
            "gzip bomb": (413, "decompresses to over 4194304 bytes"),
            "zstd bomb": (413, "decompresses to over 4194304 bytes"),
            "broken gzip": (400, "not valid gzip"),
            "gzip cut short": (400, "cut short"),
            "a path as a field name": (400, "is not a word"),
            "a path as a file field": (400, "is not a word"),
            "control characters": (400, "control characters"),
            "not a minidump": (400, "not a minidump"),
            "no dump": (400, "exactly one dump"),
            "two dumps": (400, "exactly one dump"),
            "empty dump": (400, "is empty"),
            "not a form": (415, "multipart/form-data"),
            "an unknown encoding": (415, "Content-Encoding"),
            "an annotation too long": (413, "the form cannot be read"),
        }
        for name, (status, reason) in cases.items():
            want_status, want_reason = expected[name]
            assert (status, want_reason in reason) == (want_status, True), (name, status, reason)
            assert reason.count("\n") <= 1, "one line"
        # nothing of them was kept, nothing half-written is left
        assert not list((s.store / "crashes").iterdir())
        assert not list((s.store / "incoming").iterdir())
        assert s.api("/status")["crashes"] == 0


def test_a_core_that_cannot_be_analysed_is_listed_and_keeps_its_raw_dump(
    server: Server, tmp_path: Path
) -> None:
    core = next(p for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"
                and p.read_bytes()[16] == 4)  # fmt: skip
    cut = tmp_path / "cut.core"
    cut.write_bytes(core.read_bytes()[:3000])
    code, body = curl_upload(server.url, cut, "prod=Cut", field="upload_file_core")
    assert code == 200, body
    cid = ANSWER.match(body).group(1)  # type: ignore[union-attr]
    server.settled(1)
    (failed,) = server.api("/status")["failed"]
    assert failed["id"] == cid
    assert failed["status"] in ("failed", "truncated")
    assert failed["error"]
    assert server.api("/buckets")["total"] == 0
    crash = server.api(f"/crash/{cid}")
    assert crash["has_dump"] is True
    stored = (
        zstandard.ZstdDecompressor()
        .stream_reader((server.store / "crashes" / cid / "core.zst").read_bytes(), read_across_frames=True)
        .read()
    )
    assert stored == cut.read_bytes()


def test_uploads_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    dump = minidumps()[0]
    with serving(tmp_path / "store", tmp_path / "t.db", "--token", "s3cret") as s:
        assert curl_upload(s.url, dump)[0] == 401
        r = subprocess.run(
            ["curl", "--noproxy", "*", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer nope",
             "-F", f"upload_file_minidump=@{dump}", s.url + "/submit"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert r.stdout == "403"
        ok = subprocess.run(
            ["curl", "--noproxy", "*", "-sS", "-F", f"upload_file_minidump=@{dump}", s.url + "/submit?token=s3cret"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert ANSWER.match(ok.stdout), ok.stdout
    r = run_nmf(
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--store",
        str(tmp_path / "s2"),
        "--db",
        str(tmp_path / "t2.db"),
    )
    assert r.returncode == 2
    assert "--token" in r.stderr


def test_a_server_killed_with_sigkill_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    """Crashes are stored before they are acknowledged: acknowledged by a server that only receives,
    which is then killed; the next server processes every one of them."""
    dumps = minidumps()[:12]
    acked = []
    with serving(tmp_path / "store", tmp_path / "t.db", "--no-process") as s:
        for d in dumps:
            code, body = curl_upload(s.url, d)
            assert code == 200
            acked.append(ANSWER.match(body).group(1))  # type: ignore[union-attr]
        os.killpg(s.process.pid, signal.SIGKILL)
    with serving(tmp_path / "store", tmp_path / "t.db") as s:
        s.settled(len(acked))
        for cid in acked:
            assert s.api(f"/crash/{cid}")["crash"]["id"] == cid


def test_collected_cores_and_the_submit_client(tmp_path: Path) -> None:
    """``notmyfault submit`` sends a minidump and an ELF core (gzip body, as Crashpad does); the core
    is kept zstd-compressed and analysed like the kernel's."""
    core = next(p for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"
                and p.read_bytes()[16] == 4 and p.stat().st_size < 4 << 20)  # fmt: skip
    with serving(tmp_path / "store", tmp_path / "t.db") as s:
        env = {"NO_PROXY": "*", "no_proxy": "*"}
        r = run_nmf(
            "submit",
            str(minidumps()[0]),
            "--url",
            s.url + "/submit",
            "-a",
            "prod=Cli",
            "-a",
            "ver=3",
            "--json",
            env=env,
        )
        assert r.returncode == 0, r.stderr
        first = json.loads(r.stdout)["crash_id"]
        r = run_nmf("submit", str(core), "--url", s.url + "/submit", "--no-gzip", env=env)
        assert r.returncode == 0, r.stderr
        second = ANSWER.match(r.stdout)
        assert second, r.stdout
        s.settled(2)
        a = s.api(f"/crash/{first}")["crash"]
        assert a["version"] == "3"
        assert a["program"] == "Cli"
        c = s.api(f"/crash/{second.group(1)}")["crash"]
        stored = s.store / "crashes" / second.group(1) / "core.zst"
        assert (
            zstandard.ZstdDecompressor().stream_reader(stored.read_bytes(), read_across_frames=True).read()
            == core.read_bytes()
        )
        expect = json.loads(run_nmf("analyze", "--json", str(core)).stdout)
        assert (c["crash_class"], c["signature"]) == (expect["crash_class"], expect["signature"])
        r = run_nmf("submit", str(core), "--url", s.url + "/nowhere", env=env)
        assert r.returncode == 2
        assert "refused" in r.stderr
        assert "Traceback" not in r.stderr


def test_serve_on_postgresql_with_a_dask_scheduler(postgres: str, tmp_path: Path) -> None:
    """The fleet setup the README gives: the database on PostgreSQL, the analyses on a Dask cluster.
    Every crash is recorded, with the analysis the analyzer gives its dump."""
    from distributed import LocalCluster

    db = fresh_database(postgres, "t_serve")
    dumps = minidumps()[::6]
    with (
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster,
        serving(tmp_path / "store", db, "--scheduler", cluster.scheduler_address) as s,
    ):
        ids = {}
        for i, d in enumerate(dumps):
            code, body = curl_upload(s.url, d, "prod=Pg", f"ver={1 + i % 2}")
            assert code == 200, body
            ids[ANSWER.match(body).group(1)] = d  # type: ignore[union-attr]
        s.settled(len(ids))
        listing = s.api("/buckets")
        assert listing["total"] + len(s.api("/status")["failed"]) == len(ids)
        assert listing["facets"]["versions"] == ["1", "2"]
        for cid, d in ids.items():
            crash = s.api(f"/crash/{cid}")["crash"]
            expect = json.loads(run_nmf("analyze", "--json", str(d)).stdout)
            assert (crash["crash_class"], crash["signature"]) == (
                expect["crash_class"],
                expect["signature"],
            ), d


def test_the_load_bench_loses_nothing_across_a_sigkill() -> None:
    """bench/serve_load.py's short form: 100 uploads at 25/s, the server SIGKILLed after 2 s and
    started again; every acknowledged upload is in the database."""
    out = run_bench(
        "serve_load.py", "--rate", "25", "--seconds", "4", "--kill-at", "2", "--drain", "300", timeout=600
    )
    assert out["uploads"] == 100
    assert out["killed_at"] is not None
    assert out["acknowledged"] == 100
    assert out["lost"] == 0
    assert out["queued_left"] == 0
    assert out["recorded"] == 100 + out["sent_twice"]
    assert out["p50_ms"] is not None
