"""Processing: the store's queued crashes through the triage workers into the database.

Each round takes the crashes that are whole in the store, analyses their dumps with triage's
ingest (the local warm workers, or a Dask cluster), then records each crash (``crashes`` table,
by its dump's content hash) and only then takes it off the queue. A crash whose analysis failed is
recorded as such (the UI lists it) and keeps its raw dump; a stop at any point leaves the rest
queued for the next round, so nothing received is lost.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from notmyfault.pipeline.store import Store
from notmyfault.triage import Database, ingest_dumps
from notmyfault.triage import record_crash as record


@dataclass
class Processor:
    """Processes a store's queue into the database at ``db_url``."""

    store: Store
    db_url: str
    workers: int = 1
    scheduler: str | None = None
    timeout: float = 120.0
    memory_limit: int | None = None
    batch: int = 64
    processed: int = 0
    """Crashes recorded by this processor."""
    errors: list[str] = field(default_factory=list)
    """The last failures of whole rounds (the database unreachable ...), newest last."""

    def round(self) -> int:
        """Process what is queued now (at most ``batch`` crashes); how many were recorded."""
        ready = self.store.ready()[: self.batch]
        if not ready:
            return 0
        metas: dict[str, dict[str, Any]] = {}
        for crash_id in ready:
            try:
                metas[crash_id] = self.store.meta(crash_id)
            except KeyError:
                continue
        paths = {cid: self.store.dump_path(cid) for cid in metas}
        by_host: dict[str | None, set[str]] = {}
        for crash_id, path in paths.items():
            if path is not None:  # the machine it crashed on: collect's, or what an upload says
                host = metas[crash_id].get("host")
                by_host.setdefault(host if isinstance(host, str) else None, set()).add(path)
        with Database(self.db_url) as db:
            for host, todo in by_host.items():
                ingest_dumps(
                    db,
                    sorted(todo),
                    workers=self.workers,
                    scheduler=self.scheduler,
                    timeout=self.timeout,
                    memory_limit=self.memory_limit,
                    host=host,
                )
            done = 0
            for crash_id, meta in metas.items():
                digest = meta.get("sha256") if paths[crash_id] is not None else None
                record(db, crash_id, digest if isinstance(digest, str) else None, meta)
                self.store.processed(crash_id)
                done += 1
        self.processed += done
        return done

    def run(self, stop: threading.Event, interval: float = 0.5) -> None:
        """Process rounds until ``stop`` is set, waiting ``interval`` between empty ones; a round
        that fails (database down) is retried after a pause, its crashes still queued."""
        self.store.reap_incoming()
        while not stop.is_set():
            try:
                n = self.round()
            except (OSError, ValueError) as e:
                self.errors = [*self.errors[-9:], f"{time.strftime('%H:%M:%S')} {e}"]
                stop.wait(5.0)
                continue
            if n == 0:
                stop.wait(interval)


def pending_summary(store: Store) -> dict[str, Any]:
    """How many crashes wait, and the oldest one's age in seconds."""
    queued = store.queued()
    oldest = None
    if queued:
        try:
            oldest = time.time() - os.stat(os.path.join(store.queue, queued[0])).st_mtime
        except OSError:
            oldest = None
    return {"queued": len(queued), "oldest_seconds": oldest}
