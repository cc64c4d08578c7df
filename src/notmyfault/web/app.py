"""The collector and the live web UI (``notmyfault serve``): a Starlette application.

- ``POST /submit``: a Breakpad/Crashpad upload (pipeline.upload), kept in the store *before* the
  answer (``CrashID=bp-ID``) is sent, then processed in the background.
- ``/``: buckets (count, share, crashes per day, first and last seen, versions, programs), with
  filters (program, version, class, since) and a search (function name or signature);
  ``/bucket/ID``: its crashes; ``/crash/ID``: the whole analysis, annotations and a link to
  ``/crash/ID/dump``, the raw dump; ``/new?version=V``: the buckets new in a version;
  ``/status``: the queue and the processor.
- Every page is also JSON: ``/api/...`` or ``Accept: application/json`` (kinds ``serve-*``,
  documented in docs/json-schema.md).

Pages are Jinja2 templates with autoescaping: every string from a dump or an upload is escaped,
and the Content-Security-Policy forbids scripts. The database is read through one connection per
thread; the processor writes through its own.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import threading
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notmyfault import __version__
from notmyfault.base import storable_tree
from notmyfault.pipeline import (
    CRASH_ID,
    DUMP_FIELDS,
    Processor,
    Rejected,
    Store,
    Upload,
    UploadLimits,
    check_annotations,
)
from notmyfault.pipeline import receive as keep_upload
from notmyfault.render import SCHEMA_VERSION
from notmyfault.triage import (
    CrashFilter,
    Database,
    bucket_crashes,
    bucket_summary,
    crash_buckets,
    crash_facets,
    crash_row,
    crash_total,
    crash_versions,
    failed_crashes,
    new_in_version,
    parse_since,
    spark_days,
)

HERE = Path(__file__).resolve().parent
CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"


@dataclass
class Settings:
    """What the server serves, and how it takes uploads."""

    store: Store
    db_url: str
    token: str | None = None
    """Uploads must carry it (``Authorization: Bearer T``, or ``?token=T`` in the URL)."""
    limits: UploadLimits = field(default_factory=UploadLimits)
    processor: Processor | None = None
    """None: crashes are only received (another server processes the store)."""


class _Reads(threading.local):
    db: Database | None = None


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["spark"] = _spark_points
    env.filters["pct"] = lambda v: f"{100 * float(v):.1f}%"
    return env


def _spark_points(counts: list[int], width: int = 84, height: int = 18) -> str:
    """An SVG polyline's points for a sparkline of ``counts`` (numbers only)."""
    top = max(counts) if counts and max(counts) > 0 else 1
    step = width / max(1, len(counts) - 1)
    return " ".join(f"{i * step:.1f},{height - 1 - (height - 2) * c / top:.1f}" for i, c in enumerate(counts))


def create_app(settings: Settings) -> Starlette:
    """The application: routes, templates, the processor's thread for its lifetime."""
    env = _env()
    reads = _Reads()
    stop = threading.Event()

    def db() -> Database:
        mine = reads.db
        if mine is None or getattr(mine.conn, "closed", False) or getattr(mine.conn, "broken", False):
            mine = reads.db = Database(settings.db_url)  # first use here, or PostgreSQL dropped the last
        return mine

    def wants_json(request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return request.url.path.startswith("/api/") or (
            "application/json" in accept and "text/html" not in accept
        )

    def page(request: Request, kind: str, data: dict[str, Any], template: str, status: int = 200) -> Response:
        if wants_json(request):
            return JSONResponse(
                storable_tree({"schema_version": SCHEMA_VERSION, "kind": kind, **data}), status
            )
        html = env.get_template(template).render(
            request=request, version=__version__, days=spark_days(), **data
        )
        return HTMLResponse(html, status)

    def error(request: Request, status: int, reason: str) -> Response:
        return page(request, "serve-error", {"status": status, "error": reason}, "error.html", status)

    def crash_filter(request: Request) -> CrashFilter:
        p = request.query_params
        since = p.get("since") or None
        if since:
            since = parse_since(since)
        return CrashFilter(
            program=p.get("program") or None,
            version=p.get("version") or None,
            crash_class=p.get("class") or None,
            since=since,
            search=p.get("q") or None,
        )

    def index(request: Request) -> Response:
        try:
            f = crash_filter(request)
        except ValueError as e:
            return error(request, 400, str(e))
        data = {
            "filter": f.as_dict(),
            "total": crash_total(db(), f),
            "buckets": crash_buckets(db(), f),
            "facets": crash_facets(db()),
            "failed": len(failed_crashes(db())),
            "queued": len(settings.store.queued()),
        }
        return page(request, "serve-buckets", data, "buckets.html")

    def bucket(request: Request) -> Response:
        bid = request.path_params["bucket"]
        try:
            f = crash_filter(request)
        except ValueError as e:
            return error(request, 400, str(e))
        summary = bucket_summary(db(), bid)
        if summary is None:
            return error(request, 404, f"no bucket {bid}")
        data = {"filter": f.as_dict(), "bucket": summary, "crashes": bucket_crashes(db(), bid, f)}
        return page(request, "serve-bucket", data, "bucket.html")

    def crash(request: Request) -> Response:
        cid = request.path_params["crash"]
        row = crash_row(db(), cid) if CRASH_ID.match(cid) else None
        if row is None:
            if CRASH_ID.match(cid) and cid in settings.store.queued():
                return error(request, 404, f"crash {cid} is received and waits to be processed")
            return error(request, 404, f"no crash {cid}")
        try:
            has_dump = settings.store.dump_path(cid) is not None
        except KeyError:
            has_dump = False
        return page(request, "serve-crash", {"crash": row, "has_dump": has_dump}, "crash.html")

    def download(request: Request) -> Response:
        cid = request.path_params["crash"]
        try:
            path = settings.store.dump_path(cid) if CRASH_ID.match(cid) else None
        except KeyError:
            path = None
        if path is None:
            return error(request, 404, f"crash {cid} has no dump here")
        name = f"{cid}{'.dmp' if path.endswith('.dmp') else '.core.zst'}"
        return FileResponse(path, media_type="application/octet-stream", filename=name)

    def new(request: Request) -> Response:
        try:
            f = crash_filter(request)
        except ValueError as e:
            return error(request, 400, str(e))
        versions = crash_versions(db())
        version = request.query_params.get("version") or (versions[-1] if versions else None)
        data = {
            "filter": f.as_dict(),
            "version": version,
            "versions": versions,
            "buckets": new_in_version(db(), version, f) if version else [],
        }
        return page(request, "serve-new", data, "new.html")

    def status(request: Request) -> Response:
        p = settings.processor
        data = {
            "queued": len(settings.store.queued()),
            "crashes": len(settings.store.ids()),
            "processed": p.processed if p else None,
            "processing": p is not None,
            "errors": list(p.errors) if p else [],
            "dropped": len(settings.store.dropped()),
            "failed": failed_crashes(db()),
        }
        return page(request, "serve-status", data, "status.html")

    async def submit(request: Request) -> Response:
        try:
            crash_id = await _submit(request, settings)
        except Rejected as e:
            if wants_json(request):
                return JSONResponse(
                    {
                        "schema_version": SCHEMA_VERSION,
                        "kind": "serve-error",
                        "status": e.status,
                        "error": e.reason,
                    },
                    e.status,
                )
            return PlainTextResponse(f"{e.reason}\n", e.status)
        if wants_json(request):
            return JSONResponse(
                {"schema_version": SCHEMA_VERSION, "kind": "serve-submit", "crash_id": crash_id}
            )
        return PlainTextResponse(f"CrashID=bp-{crash_id}\n")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        settings.store.create()
        thread = None
        if settings.processor is not None:
            thread = threading.Thread(
                target=settings.processor.run, args=(stop,), name="processor", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=30)

    routes: list[BaseRoute] = []
    for prefix in ("", "/api"):
        routes += [
            Route(f"{prefix}/" if not prefix else f"{prefix}/buckets", index),
            Route(prefix + "/bucket/{bucket}", bucket),
            Route(prefix + "/crash/{crash}", crash),
            Route(prefix + "/new", new),
            Route(prefix + "/status", status),
        ]
    routes += [
        Route("/crash/{crash}/dump", download),
        Route("/submit", submit, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def failed(request: Request, exc: Exception) -> Response:
        # the database gone (PostgreSQL restarting), a store on a full disk: a page that says so
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return error(request, 503, f"the page cannot be made now: {reason}")

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={Exception: failed},
    )


class SecurityHeaders:
    """ASGI middleware: every response says not to run scripts, sniff types or send referrers."""

    HEADERS = (
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


def _authorized(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    given = request.query_params.get("token") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


async def _limited(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes, None]:
    n = 0
    async for chunk in stream:
        n += len(chunk)
        if n > limit:
            raise Rejected(413, f"the body is over {limit} bytes")
        yield chunk


async def _gunzip(stream: AsyncGenerator[bytes, None], limit: int) -> AsyncGenerator[bytes, None]:
    """The gzip-compressed ``stream`` decompressed, Rejected past ``limit`` bytes (a gzip bomb stops
    there: each step is bounded) or if it is not gzip."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    n = 0
    try:
        async for chunk in stream:
            data = chunk
            while data:
                out = d.decompress(data, 1 << 20)
                n += len(out)
                if n > limit:
                    raise Rejected(413, f"the body decompresses to over {limit} bytes")
                if out:
                    yield out
                data = d.unconsumed_tail
        out = d.flush()
        n += len(out)
        if n > limit:
            raise Rejected(413, f"the body decompresses to over {limit} bytes")
        if out:
            yield out
    except zlib.error as e:
        raise Rejected(400, f"the body is not valid gzip: {e}") from None
    if not d.eof:
        raise Rejected(400, "the gzip body is cut short")


async def _submit(request: Request, settings: Settings) -> str:
    """Take one upload; its crash id. Rejected with the status and reason for anything else."""
    limits = settings.limits
    if not _authorized(request, settings.token):
        raise Rejected(
            401 if not request.headers.get("authorization") else 403, "a valid upload token is needed"
        )
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limits.max_body):
        raise Rejected(413, f"the body is over {limits.max_body} bytes")
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise Rejected(415, "send multipart/form-data (Breakpad's upload format)")
    encoding = request.headers.get("content-encoding", "identity").lower().strip()
    stream = _limited(request.stream(), limits.max_body)
    if encoding in ("gzip", "x-gzip"):
        stream = _gunzip(stream, limits.max_decompressed)
    elif encoding not in ("identity", ""):
        raise Rejected(415, f"Content-Encoding {encoding[:32]!r} is not taken: send gzip or nothing")
    parser = MultiPartParser(
        request.headers,
        stream,
        max_files=limits.max_files,
        max_fields=limits.max_fields,
        max_part_size=limits.max_field,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:  # past max_part_size, max_fields or max_files: too large
        too_much = "maximum" in e.message or "too many" in e.message.lower()
        raise Rejected(413 if too_much else 400, f"the form cannot be read: {e.message}") from None
    try:
        fields: list[tuple[str, str]] = []
        dumps: list[tuple[str, UploadFile]] = []
        others: list[str] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name in DUMP_FIELDS:
                    dumps.append((name, value))
                else:
                    check_annotations([(name, "")], limits)
                    others.append(name)
            else:
                fields.append((name, value))
        annotations = check_annotations(fields, limits)
        if len(dumps) != 1:
            raise Rejected(
                400,
                f"send exactly one dump, in {DUMP_FIELDS[0]} (a minidump) or {DUMP_FIELDS[1]} (an ELF core)",
            )
        which, dump = dumps[0]
        client = request.client.host if request.client else None
        upload = Upload(which, annotations, client, tuple(others))
        try:
            return await run_in_threadpool(keep_upload, settings.store, dump.file, upload, limits)
        except OSError as e:  # the store's disk: full, gone, read-only
            raise Rejected(507, f"the crash could not be stored: {e.strerror or e}") from None
    finally:
        await form.close()


def serve_forever(settings: Settings, host: str, port: int, ready: Any = None) -> None:
    """Serve on ``host``:``port`` until SIGINT or SIGTERM (uvicorn's graceful stop); ``ready`` is
    called with the bound port once the socket listens (port 0: a free one)."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    if ready is not None:
        ready(sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(settings), log_level=os.environ.get("NOTMYFAULT_SERVE_LOG", "warning"), lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])
