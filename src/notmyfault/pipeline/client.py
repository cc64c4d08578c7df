"""``notmyfault submit``: upload a dump to a collector as a Breakpad or Crashpad client does
(multipart form data, the dump in ``upload_file_minidump`` or ``upload_file_core``, annotations as
fields, the body gzip-compressed), and read back the crash id (``CrashID=bp-ID``); with a store,
forward the crashes ``collect`` kept on this host to a central collector."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import tempfile
import urllib.parse
import urllib.request
import uuid
from typing import BinaryIO

from notmyfault.pipeline.store import Store
from notmyfault.pipeline.upload import CORE_FIELD, MDMP, MINIDUMP_FIELD

_ANSWER = re.compile(r"CrashID=bp-([0-9a-f-]+)")


class SubmitFailed(Exception):
    """The upload did not go through: one line saying why; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _form(out: BinaryIO, boundary: str, dump: str, field: str, annotations: list[tuple[str, str]]) -> None:
    b = boundary.encode()
    for key, value in annotations:
        out.write(b"--" + b + b"\r\n")
        out.write(f'Content-Disposition: form-data; name="{_quote(key)}"\r\n\r\n'.encode())
        out.write(value.encode() + b"\r\n")
    out.write(b"--" + b + b"\r\n")
    out.write(
        f'Content-Disposition: form-data; name="{field}"; filename="{_quote(os.path.basename(dump))}"\r\n'.encode()
    )
    out.write(b"Content-Type: application/octet-stream\r\n\r\n")
    with open(dump, "rb") as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out.write(b"\r\n--" + b + b"--\r\n")


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection for ``url`` (through the proxy the environment names for it, as urllib would
    choose it) and the request target to send."""
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.netloc):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if secure:  # CONNECT through the proxy, then TLS to the collector
            tunnel = http.client.HTTPSConnection(p.hostname or "", p.port or 80, timeout=timeout)
            tunnel.set_tunnel(host, port)
            return tunnel, target
        return http.client.HTTPConnection(p.hostname or "", p.port or 80, timeout=timeout), url
    cls = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    return cls(host, port, timeout=timeout), target


def _post(url: str, body: BinaryIO, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """POST ``body`` to ``url``: the status and the answer's text. A collector may answer before it
    has read the whole body (a refusal: too large, no such path) and close: that answer is read."""
    try:
        conn, target = _connection(url, timeout)
    except (ValueError, OSError) as e:
        raise SubmitFailed(f"cannot reach {url}: {e}") from None
    try:
        # a collector that answers early and closes (a refusal) breaks the send: its answer is read
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(4096).decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        raise SubmitFailed(f"cannot reach {url}: {getattr(e, 'strerror', None) or e}") from None
    finally:
        conn.close()


def submit_dump(
    dump: str,
    url: str,
    annotations: list[tuple[str, str]],
    token: str | None = None,
    gzipped: bool = True,
    timeout: float = 60.0,
) -> str:
    """Upload ``dump`` to ``url``; the crash id the collector gave. SubmitFailed otherwise."""
    if not url.startswith(("http://", "https://")):
        raise SubmitFailed(f"--url {url!r} is not an http:// or https:// URL")
    try:
        with open(dump, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise SubmitFailed(f"cannot read {dump}: {e.strerror}") from None
    field = MINIDUMP_FIELD if head == MDMP else CORE_FIELD
    boundary = uuid.uuid4().hex
    with tempfile.TemporaryFile() as body:
        if gzipped:
            with gzip.GzipFile(fileobj=body, mode="wb", compresslevel=6) as z:
                _form(z, boundary, dump, field, annotations)  # type: ignore[arg-type]
        else:
            _form(body, boundary, dump, field, annotations)
        size = body.tell()
        body.seek(0)
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, text = _post(url, body, headers, timeout)
    if status != 200:
        lines = text.strip().splitlines()
        raise SubmitFailed(f"the collector refused it: {status} {lines[0][:300] if lines else ''}", status)
    m = _ANSWER.search(text)
    if not m:
        raise SubmitFailed(f"the collector answered without a crash id: {text[:200]!r}")
    return m.group(1)


FORWARDED_FIELDS = ("host", "exe", "pid", "host_pid", "signal", "time", "uid", "build_id", "source")
"""What a forwarded crash's metadata sends as annotations (not its command line: that stays on the
host, where only root reads the store)."""


def forward(
    store: Store, url: str, token: str | None = None, gzipped: bool = True, timeout: float = 60.0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Upload every crash the store holds queued to the collector at ``url`` and take it off the
    queue once the collector acknowledged it (its metadata records where it went). Returns
    ((local id, remote id) of those sent, (local id, why) of those that were not: they stay queued)."""
    sent, failed = [], []
    for crash_id in store.ready():
        meta = store.meta(crash_id)
        path = store.dump_path(crash_id)
        if path is None:
            failed.append((crash_id, "its dump was removed to keep the store under its limits"))
            continue
        exe = meta.get("exe") or meta.get("comm") or "?"
        annotations = [("prod", os.path.basename(str(exe))), ("collected_id", crash_id)]
        annotations += [(k, str(meta[k])) for k in FORWARDED_FIELDS if meta.get(k) is not None]
        try:
            remote = submit_dump(path, url, annotations, token, gzipped, timeout)
        except SubmitFailed as e:
            failed.append((crash_id, str(e)))
            if e.status is None:  # the collector is unreachable: the rest would fail the same way
                break
            continue
        store.update_meta(crash_id, {"forwarded": {"url": url, "crash_id": remote}})
        store.processed(crash_id)
        sent.append((crash_id, remote))
    return sent, failed
