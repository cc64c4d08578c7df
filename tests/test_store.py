"""The crash store on its own (pipeline/store.py): commits whole or not at all, the quota that
removes the oldest processed dumps first, the rate windows, and what killed writers leave."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notmyfault.pipeline import Dropped, Limits, Store


def put(store: Store, size: int, limits: Limits, when: float | None = None) -> str:
    pending = store.begin(when)
    Path(pending.file("core.zst")).write_bytes(os.urandom(size))
    return pending.commit({"source": "test"}, "core.zst", limits)


def on_disk(store: Store) -> int:
    return sum(f.stat().st_blocks * 512 for d in Path(store.crashes).iterdir() for f in d.iterdir())


def test_over_its_quota_the_store_removes_the_oldest_processed_dumps_first(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s"))
    limits = Limits(max_use=450_000, keep_free=0)
    ids = []
    for _ in range(4):
        ids.append(put(store, 100_000, limits))
        time.sleep(0.01)
    store.processed(ids[0])
    store.processed(ids[1])
    newest = put(store, 100_000, limits)  # needs room: the oldest processed one gives its dump
    assert store.dump_path(ids[0]) is None
    assert store.meta(ids[0])["dump_removed"].startswith("removed to keep the store")
    assert all(store.dump_path(i) for i in (*ids[1:], newest))
    assert on_disk(store) <= 450_000
    # queued crashes are never removed: with nothing processed left, a new crash is dropped whole
    store.processed(ids[1])
    put(store, 100_000, limits)
    assert store.dump_path(ids[1]) is None
    for i in ids[2:]:
        assert store.dump_path(i) is not None
    before = set(store.ids())
    with pytest.raises(Dropped, match=r"quota: .* no processed crash is left"):
        put(store, 200_000, limits)
    assert set(store.ids()) == before
    assert os.listdir(store.incoming) == []
    assert on_disk(store) <= 450_000


def test_concurrent_commits_never_pass_the_quota(tmp_path: Path) -> None:
    """Eight writers at once, 60 crashes of 50 kB into 1 MB: some are kept, the rest dropped, and
    the store's own count is what the disk holds."""
    store = Store(str(tmp_path / "s"))
    limits = Limits(max_use=1_000_000, keep_free=0)

    def one(_: int) -> bool:
        try:
            put(store, 50_000, limits)
            return True
        except Dropped:
            return False

    with cf.ThreadPoolExecutor(8) as pool:
        kept = sum(pool.map(one, range(60)))
    assert 0 < kept < 60
    assert len(store.ids()) == kept
    assert on_disk(store) <= 1_000_000
    with store.locked():
        assert store.cached_usage() == on_disk(store) == store.usage()


def test_the_rate_limit_is_a_window_per_program(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s"))
    store.create()
    for i in range(3):
        store.admit("/bin/a", 3, 60, now=1000 + i)
    with pytest.raises(Dropped, match="rate limit: 3 crashes of /bin/a"):
        store.admit("/bin/a", 3, 60, now=1010)
    store.admit("/bin/b", 3, 60, now=1010)  # another program has its own window
    store.admit("/bin/a", 3, 60, now=1061)  # the window ended: a new one begins
    table = json.loads((tmp_path / "s" / ".rate.json").read_text())
    assert table == {"/bin/a": [1061, 1], "/bin/b": [1010, 1]}


def test_what_a_killed_writer_leaves_is_cleaned_and_never_processed(tmp_path: Path) -> None:
    """A writer killed mid-crash leaves a directory in incoming/ (removed once its pid is gone) and
    maybe a queue entry without a crash (not ready; removed after an hour)."""
    root = tmp_path / "s"
    code = (
        "import os, sys; from notmyfault.pipeline import Store; s = Store(sys.argv[1]); p = s.begin();"
        "open(p.file('core.zst'), 'wb').write(b'x' * 1000); os.kill(os.getpid(), 9)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(root)], check=False)
    assert r.returncode == -9
    store = Store(str(root))
    assert len(os.listdir(store.incoming)) == 1
    orphan = "0e8d5a4c-7b1f-4a31-9c2e-5d6f7a261207"
    Path(store.queue, orphan).touch()
    assert store.ready() == []
    assert store.reap_incoming() == 1
    assert os.listdir(store.incoming) == []
    old = time.time() - 7200
    os.utime(Path(store.queue, orphan), (old, old))
    assert store.ready() == []
    assert not Path(store.queue, orphan).exists()


def test_a_writer_killed_between_queue_and_rename_leaves_no_queue_entry(tmp_path: Path) -> None:
    """Killed after its queue entry was made and before the rename into crashes/ (the window a
    SIGKILLed collector can hit): reaping its directory takes the queue entry with it, so nothing
    waits an hour in the queue; another crash's entry is left alone."""
    root = tmp_path / "s"
    code = (
        "import os, sys; from notmyfault.pipeline import Store; s = Store(sys.argv[1]); p = s.begin();"
        "open(os.path.join(s.queue, p.id), 'w').close(); print(p.id, flush=True); os.kill(os.getpid(), 9)"
    )
    r = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=False)
    assert r.returncode == -9
    crash_id = r.stdout.strip()
    store = Store(str(root))
    other = "0e8d5a4c-7b1f-4a31-9c2e-5d6f7a261207"  # queued by a live writer, not yet renamed
    Path(store.queue, other).touch()
    assert sorted(store.queued()) == sorted([crash_id, other])
    assert store.reap_incoming() == 1
    assert os.listdir(store.incoming) == []
    assert store.queued() == [other]


def test_a_crash_file_name_cannot_leave_its_directory(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s"))
    with store.begin() as pending:
        for bad in ("../x", "/etc/passwd", ".hidden", "a/b", ""):
            with pytest.raises(ValueError, match="not a crash file name"):
                pending.file(bad)
    with pytest.raises(KeyError):
        store.meta("../../etc")
