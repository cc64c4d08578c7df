"""Load on ``notmyfault serve``: uploads at a steady rate on loopback, the server SIGKILLed once
mid-run and started again, then every acknowledged crash looked for in the database.

    python bench/serve_load.py [--rate 100] [--seconds 60] [--kill-at 30] [--workers 2]

Each upload is a minidump of the corpus (../shared/corpus) with Breakpad's form fields, made
distinct by a few random bytes after its streams (so that each is analysed, not found known).
A client that cannot connect (the server is down) tries again after 50 ms, as a crash reporter
would, and the wait counts in that upload's latency. Prints p50 and p99 upload latency, the
processing throughput (crashes recorded per second from the first acknowledgement until the queue
is empty), and the lost uploads: acknowledged but not in the database (must be 0). Bounded: the
sending stops after ``--seconds``, the drain after ``--drain``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
ANSWER = re.compile(rb"CrashID=bp-([0-9a-f-]{36})")


def minidumps() -> list[bytes]:
    out = []
    for p in sorted(CORPUS.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            if data[:4] == b"MDMP":
                out.append(data)
    if not out:
        sys.exit(f"no minidumps under {CORPUS}")
    return out


def body(dump: bytes, i: int) -> tuple[bytes, str]:
    boundary = f"b{i:08d}{random.getrandbits(32):08x}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in (("prod", "LoadApp"), ("ver", f"1.{i % 5}"), ("guid", f"{i:032x}"))
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="upload_file_minidump"; filename="d.dmp"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + dump
        + os.urandom(16)  # after the streams: the reader never looks there; the hash differs
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), boundary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, store: Path, db: Path, port: int, workers: int) -> None:
        self.args = [sys.executable, "-m", "notmyfault", "serve", "--port", str(port), "--store", str(store),
                     "--db", str(db), "--workers", str(workers), "--rate", "10000000/60"]  # fmt: skip
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(b"serving"):
            sys.exit(f"serve did not start: {line!r}")

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def upload(port: int, data: bytes, boundary: str, deadline: float) -> tuple[float, str | None, int]:
    """(latency, crash id or None, status); retries while the server is down, until ``deadline``."""
    t0 = time.monotonic()
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("POST", "/submit", body=data,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
            r = conn.getresponse()
            text = r.read()
            m = ANSWER.search(text)
            return time.monotonic() - t0, m.group(1).decode() if m and r.status == 200 else None, r.status
        except (ConnectionError, http.client.HTTPException, OSError):
            if time.monotonic() > deadline:
                return time.monotonic() - t0, None, 0
            time.sleep(0.05)
        finally:
            conn.close()


def status(port: int) -> dict[str, object]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/api/status", timeout=30) as r:
        out: dict[str, object] = json.load(r)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=100.0, help="uploads per second")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--kill-at", type=float, default=30.0, help="SIGKILL the server this many seconds in")
    ap.add_argument("--workers", type=int, default=2, help="serve's analysis processes")
    ap.add_argument("--drain", type=float, default=1800.0, help="at most this long to process the backlog")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dumps = minidumps()
    root = Path(tempfile.mkdtemp(prefix="nmf-load-"))
    port = free_port()
    server = Server(root / "store", root / "triage.db", port, args.workers)
    server.start()
    count = int(args.rate * args.seconds)
    results: list[tuple[float, str | None, int]] = []
    lock = threading.Lock()
    t0 = time.monotonic()
    end = t0 + args.seconds + 120
    killed_at = None

    def one(i: int) -> None:
        data, boundary = body(dumps[i % len(dumps)], i)
        wait = t0 + i / args.rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        res = upload(port, data, boundary, end)
        with lock:
            results.append(res)

    try:
        with cf.ThreadPoolExecutor(64) as pool:
            futures = [pool.submit(one, i) for i in range(count)]
            while time.monotonic() - t0 < args.kill_at and not all(f.done() for f in futures):
                time.sleep(0.05)
            if args.kill_at < args.seconds:
                server.kill()
                killed_at = time.monotonic() - t0
                server.start()
            cf.wait(futures)
        sent = time.monotonic() - t0
        acked = [cid for _, cid, _ in results if cid]
        first_ack = t0
        drain_start = time.monotonic()
        while True:
            s = status(port)
            with sqlite3.connect(root / "triage.db") as db:
                recorded = db.execute("SELECT COUNT(*) FROM crashes").fetchone()[0]
            if s["queued"] == 0 and recorded >= len(acked):
                break
            if time.monotonic() - drain_start > args.drain:
                break
            time.sleep(0.5)
        done = time.monotonic()
        with sqlite3.connect(root / "triage.db") as db:
            have = {r[0] for r in db.execute("SELECT id FROM crashes")}
            analysed = db.execute("SELECT COUNT(*) FROM dumps WHERE status = 'ok'").fetchone()[0]
        lost = [c for c in acked if c not in have]
        latencies = sorted(lat for lat, cid, _ in results if cid)
        statuses: dict[int, int] = {}
        for _, _, st in results:
            statuses[st] = statuses.get(st, 0) + 1
        out = {
            "uploads": count,
            "rate": args.rate,
            "sending_seconds": round(sent, 1),
            "killed_at": round(killed_at, 1) if killed_at else None,
            "acknowledged": len(acked),
            "statuses": statuses,
            "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
            "recorded": len(have),
            "analysed_ok": analysed,
            "processing_per_second": round(len(have) / (done - first_ack), 1),
            "drain_seconds": round(done - drain_start, 1),
            "lost": len(lost),
            "sent_twice": len(have) - (len(acked) - len(lost)),
            "queued_left": s["queued"],
        }
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"uploads: {out['uploads']} at {args.rate:g}/s in {out['sending_seconds']} s; the server SIGKILLed at "
              f"{out['killed_at']} s and started again")  # fmt: skip
        print(f"acknowledged: {out['acknowledged']} (statuses {out['statuses']}); latency p50 {out['p50_ms']} ms,"
              f" p99 {out['p99_ms']} ms")  # fmt: skip
        print(f"processed: {out['recorded']} crashes recorded ({out['analysed_ok']} dumps analysed), "
              f"{out['processing_per_second']}/s; the backlog drained {out['drain_seconds']} s after sending ended")  # fmt: skip
        print(
            f"lost: {out['lost']} acknowledged uploads not in the database (must be 0); still queued: {out['queued_left']}"
        )
    sys.exit(1 if out["lost"] else 0)


if __name__ == "__main__":
    main()
