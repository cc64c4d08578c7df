"""``notmyfault collect`` installed as the machine's real core_pattern: real programs crash, the
kernel pipes their cores to it, and each lands whole, compressed, with its metadata; a storm of
500 crashes stays within the rate and quota limits; --uninstall puts back what was there."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from elftools.elf.elffile import ELFFile

from tests.conftest import run_nmf

pytestmark = pytest.mark.crash

PATTERN = "/proc/sys/kernel/core_pattern"
PIPE_LIMIT = "/proc/sys/kernel/core_pipe_limit"
NMF = str(Path(sys.executable).with_name("notmyfault"))

CRASHER = r"""
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((noinline)) void write_through_null(volatile int *p) { *p = 42; }
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "abort") == 0) abort();
    if (argc > 1 && strcmp(argv[1], "big") == 0) {  /* 8 MiB of random bytes: a core zstd cannot shrink */
        size_t n = 8u << 20; unsigned char *b = malloc(n); unsigned x = 12345;
        for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; b[i] = (unsigned char)(x >> 16); }
        write_through_null(0);
    }
    write_through_null(0);
    return 0;
}
"""


def _read(path: str) -> str:
    return Path(path).read_text().rstrip("\n")


def _write(path: str, value: str) -> None:
    Path(path).write_text(value + "\n")


@pytest.fixture(scope="module")
def crasher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crasher")
    src = out / "crasher.c"
    src.write_text(CRASHER)
    subprocess.run(["gcc", "-O1", "-g", "-o", str(out / "crasher"), str(src)], check=True)
    return out / "crasher"


@pytest.fixture
def kernel_settings() -> Iterator[dict[str, str]]:
    """The machine's dump settings, put back whatever the test did."""
    if not os.access(PATTERN, os.W_OK):
        pytest.skip("core_pattern cannot be written here (not root, or a read-only /proc/sys)")
    before = {PATTERN: _read(PATTERN), PIPE_LIMIT: _read(PIPE_LIMIT)}
    try:
        yield before
    finally:
        for path, value in before.items():
            _write(path, value)


@pytest.fixture
def store(kernel_settings: dict[str, str]) -> Iterator[Path]:
    """A store with a short path (core_pattern holds at most 127 characters)."""
    root = Path(tempfile.mkdtemp(prefix="nmf-", dir="/tmp"))
    try:
        yield root / "s"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def install(store: Path, *options: str) -> dict[str, object]:
    r = run_nmf("collect", "--install", "--store", str(store), *options, "--json")
    assert r.returncode == 0, r.stderr
    state: dict[str, object] = json.loads(r.stdout)
    assert state["installed"] is True
    return state


def crash(program: Path | str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a program that crashes; return once it is reaped (the kernel waited for the handler:
    core_pipe_limit is set while collect is installed)."""
    r = subprocess.run([str(program), *args], capture_output=True, timeout=120, cwd=cwd, check=False)
    assert r.returncode < 0, f"{program} {args} did not die by a signal: {r.returncode}"
    return r


def crashes(store: Path) -> dict[str, dict[str, object]]:
    out = {}
    for d in sorted((store / "crashes").iterdir()):
        out[d.name] = json.loads((d / "meta.json").read_text())
    return out


def build_id(path: Path) -> str:
    with open(path, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if section.name == ".note.gnu.build-id":
                for note in section.iter_notes():
                    return str(note["n_desc"])
    raise AssertionError("no build id")


def test_each_crash_lands_whole_compressed_with_its_metadata(
    store: Path, crasher: Path, tmp_path: Path
) -> None:
    state = install(store)
    assert _read(PATTERN) == f"|{NMF} collect --from-kernel {store} %P %p %I %i %s %t %u %g"
    assert _read(PIPE_LIMIT) == "16"
    assert state["previous"] == {
        PATTERN: state["previous"][PATTERN],
        PIPE_LIMIT: state["previous"][PIPE_LIMIT],
    }  # type: ignore[index]

    runs = []
    for mode in ("null", "abort"):
        p = subprocess.Popen([str(crasher), mode], cwd=tmp_path)
        p.wait(timeout=120)
        runs.append((mode, p.pid, -p.returncode))
    kept = crashes(store)
    assert len(kept) == 2, kept
    assert not list((store / "incoming").iterdir()), "a crash was left half-written"
    by_pid = {m["pid"]: (cid, m) for cid, m in kept.items()}
    for mode, pid, sig in runs:
        cid, meta = by_pid[pid]
        assert meta["signal"] == sig == (signal.SIGSEGV if mode == "null" else signal.SIGABRT)
        assert meta["host_pid"] == pid
        assert meta["tid"] == pid
        assert meta["exe"] == str(crasher)
        assert meta["cmdline"] == [str(crasher), mode]
        assert meta["comm"] == "crasher"
        assert meta["uid"] == os.getuid()
        assert meta["gid"] == os.getgid()
        assert meta["build_id"] == build_id(crasher)
        assert meta["other_namespace"] is False
        assert meta["source"] == "kernel"
        assert meta["dump"] == "core.zst"
        assert meta["id"] == cid
        # the core: zstd of the whole ELF core the kernel wrote, hashed as stored
        stored = (store / "crashes" / cid / "core.zst").read_bytes()
        assert hashlib.sha256(stored).hexdigest() == meta["sha256"]
        assert len(stored) == meta["size"]
        raw = zstandard.ZstdDecompressor().stream_reader(stored, read_across_frames=True).read()
        assert len(raw) == meta["raw_size"]
        assert raw[:4] == b"\x7fELF"
        assert raw[16] == 4
        assert meta["size"] < meta["raw_size"]  # type: ignore[operator]
        assert (store / "queue" / cid).exists(), "a kept crash is queued for processing"
        # and the analyzer reads the stored core as it is
        r = run_nmf("analyze", "--json", str(store / "crashes" / cid / "core.zst"))
        assert r.returncode == 0, r.stderr
        a = json.loads(r.stdout)
        assert a["process"]["pid"] == pid
        if mode == "null":
            assert a["crash_class"] == "NULL_POINTER_WRITE"
            assert a["blamed"]["function"] == "write_through_null"
        else:
            assert a["signal"]["name"] == "SIGABRT"


def test_a_crash_in_a_pid_namespace_has_both_pids(store: Path, crasher: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    install(store)
    r = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", str(crasher)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert r.returncode != 0
    # unshare dies by the signal its child died of (and dumps too): the crasher's is the one here
    (meta,) = [m for m in crashes(store).values() if m["comm"] == "crasher"]
    assert meta["pid"] == 1, "the crasher is the first process of its namespace"
    assert meta["host_pid"] != 1
    assert meta["other_namespace"] is True
    assert meta["exe"] == str(crasher), "read from /proc of the pid the kernel gave in the initial namespace"
    assert meta["signal"] == signal.SIGSEGV


def test_a_storm_of_500_crashes_stays_within_the_rate_and_the_quota(
    store: Path, crasher: Path, tmp_path: Path
) -> None:
    """Ten programs crash 50 times each, eight at a time (under core_pipe_limit, so the kernel hands
    every one to collect): each program keeps at most its rate, the store never passes its max use,
    and every crash is either kept or recorded as dropped, with the limit that dropped it."""
    programs = []
    for i in range(10):
        p = tmp_path / f"storm{i}"
        shutil.copy(crasher, p)
        programs.append(p)
    rate, max_use = 8, 300_000
    install(store, "--rate", "8/3600", "--max-use", str(max_use), "--keep-free", "0")
    runs = [programs[i % 10] for i in range(500)]
    with cf.ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(lambda p: subprocess.run([str(p)], capture_output=True, timeout=300, check=False), runs)
        )
    assert all(r.returncode == -signal.SIGSEGV for r in results)
    kept = crashes(store)
    dropped = [json.loads(line) for line in (store / "dropped.jsonl").read_text().splitlines()]
    assert len(kept) + len(dropped) == 500, "every crash is kept or said to be dropped"
    per_program = Counter(str(m["exe"]) for m in kept.values())
    assert per_program, "some crashes were kept"
    assert max(per_program.values()) <= rate, per_program
    usage = sum(f.stat().st_blocks * 512 for d in (store / "crashes").iterdir() for f in d.iterdir())
    assert usage <= max_use
    reasons = Counter(str(d["dropped"]).split(":")[0] for d in dropped)
    assert reasons["rate limit"] == 500 - 10 * rate, reasons
    assert reasons["quota"] == 10 * rate - len(kept) > 0, (
        "the quota refused some of what the rate let through"
    )
    assert not list((store / "incoming").iterdir())
    # the command says the same
    r = run_nmf("collect", "--store", str(store), "--json")
    state = json.loads(r.stdout)
    assert state["crashes"] == len(kept)
    assert state["dropped"] == len(dropped)
    assert state["bytes"] == usage
    assert state["dropped_by_reason"] == dict(reasons)


def test_a_core_over_the_largest_kept_is_dropped_whole(store: Path, crasher: Path) -> None:
    install(store, "--max-core", "1MB")
    crash(crasher, "big")
    assert crashes(store) == {}
    (d,) = [json.loads(line) for line in (store / "dropped.jsonl").read_text().splitlines()]
    assert d["dropped"].startswith("size:")
    assert d["exe"] == str(crasher)
    assert not list((store / "incoming").iterdir())


def test_uninstall_restores_what_was_there(
    kernel_settings: dict[str, str], store: Path, tmp_path: Path
) -> None:
    mine = f"{tmp_path}/core.%e.%p"
    _write(PATTERN, mine)
    _write(PIPE_LIMIT, "3")
    first = install(store)
    assert first["previous"] == {PATTERN: mine, PIPE_LIMIT: "3"}
    again = install(store, "--pipe-limit", "4")  # a second install keeps what was before the first
    assert again["previous"] == {PATTERN: mine, PIPE_LIMIT: "3"}
    assert _read(PIPE_LIMIT) == "4"
    r = run_nmf("collect", "--uninstall", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["installed"] is False
    assert _read(PATTERN) == mine
    assert _read(PIPE_LIMIT) == "3"
    # nothing to restore now: said so, nothing touched
    r = run_nmf("collect", "--uninstall", "--store", str(store))
    assert r.returncode == 2
    assert "not installed" in r.stderr
    assert "Traceback" not in r.stderr
    assert _read(PATTERN) == mine


def test_uninstall_leaves_a_pattern_someone_else_wrote(kernel_settings: dict[str, str], store: Path) -> None:
    install(store)
    _write(PATTERN, "|/bin/false")
    r = run_nmf("collect", "--uninstall", "--store", str(store))
    assert r.returncode == 2
    assert "changed after the install" in r.stderr
    assert _read(PATTERN) == "|/bin/false"


def test_a_pattern_the_kernel_would_cut_is_refused(kernel_settings: dict[str, str]) -> None:
    before = _read(PATTERN)
    r = run_nmf("collect", "--install", "--store", "/tmp/" + "x" * 120)
    assert r.returncode == 2
    assert "over the kernel's 127" in r.stderr
    assert _read(PATTERN) == before


def test_collected_crashes_are_processed_and_shown_by_serve(
    store: Path, crasher: Path, tmp_path: Path
) -> None:
    """The whole pipeline: the kernel hands a crash to collect, serve processes the store, and the
    crash page tells its story, the secret on its command line redacted."""
    from tests.test_serve import serving

    install(store)
    p = subprocess.Popen([str(crasher), "null", "--password", "hunter2"], cwd=tmp_path)
    p.wait(timeout=120)
    (cid,) = crashes(store)
    with serving(store, tmp_path / "t.db") as s:
        s.settled(1)
        crash = s.api(f"/crash/{cid}")["crash"]
        assert crash["source"] == "kernel"
        assert crash["crash_class"] == "NULL_POINTER_WRITE"
        assert crash["blamed"] == "crasher!write_through_null+0x0"
        assert crash["meta"]["pid"] == p.pid
        assert crash["host"] == socket.gethostname()
        assert crash["meta"]["command_line"] == f"{crasher} null --password <redacted>"
        assert "hunter2" not in json.dumps(crash)
        _, page = s.get(f"/crash/{cid}")
        assert "write_through_null" in page
        assert "hunter2" not in page
        buckets = s.api("/buckets")["buckets"]
        assert [b["count"] for b in buckets] == [1]
        assert not (store / "queue" / cid).exists(), "processed: off the queue"


def test_a_host_forwards_what_it_collected_to_a_central_serve(
    store: Path, crasher: Path, tmp_path: Path
) -> None:
    """The fleet: collect on a host, ``submit --store`` to the central collector, which analyses the
    cores; each forwarded crash leaves the host's queue, and a second run sends nothing again."""
    from tests.test_serve import serving

    install(store)
    pids = []
    for mode in ("null", "abort"):
        p = subprocess.Popen([str(crasher), mode], cwd=tmp_path)
        p.wait(timeout=120)
        pids.append(p.pid)
    local = crashes(store)
    env = {"NO_PROXY": "*", "no_proxy": "*"}
    with serving(tmp_path / "central", tmp_path / "central.db") as s:
        r = run_nmf("submit", "--store", str(store), "--url", s.url + "/submit", "--json", env=env)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["sent"] == 2
        assert out["failed"] == []
        assert out["queued"] == 0
        again = json.loads(
            run_nmf("submit", "--store", str(store), "--url", s.url + "/submit", "--json", env=env).stdout
        )
        assert again["sent"] == 0
        s.settled(2)
        remote = {}
        for cid in local:
            forwarded = json.loads((store / "crashes" / cid / "meta.json").read_text())["forwarded"]
            remote[cid] = s.api(f"/crash/{forwarded['crash_id']}")["crash"]
        for cid, meta in local.items():
            crash = remote[cid]
            assert crash["annotations"]["collected_id"] == cid
            assert crash["annotations"]["pid"] == str(meta["pid"])
            assert crash["annotations"]["exe"] == str(crasher)
            assert crash["crash_time"] == meta["time"]
            assert crash["program"] == "crasher"
            assert crash["host"] == meta["host"] == socket.gethostname()
            assert "cmdline" not in crash["annotations"], "the command line stays on the host"
        by_pid = {int(c["annotations"]["pid"]): c["crash_class"] for c in remote.values()}
        assert by_pid == {pids[0]: "NULL_POINTER_WRITE", pids[1]: "ABORT"}


def test_install_without_root_says_so_and_writes_nothing() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root, to run it as another user (setpriv)")
    before = _read(PATTERN)
    short = Path(tempfile.mkdtemp(prefix="nmf-", dir="/tmp"))  # the pattern holds 127 characters
    short.chmod(0o777)
    store = short / "s"
    r = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", NMF, "collect", "--install", "--store", str(store)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr == (
        "notmyfault: error: cannot write /proc/sys/kernel/core_pattern: run as root (the kernel's dump settings"
        " are the machine's)\n"
    )
    assert not store.exists()
    assert _read(PATTERN) == before
    shutil.rmtree(short)
