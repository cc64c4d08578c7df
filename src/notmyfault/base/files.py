"""The one way notmyfault writes a file: whole or not at all, never through a link, never over
something that is not a regular file of ours.

A file is written under a name nobody can predict (``O_EXCL``, made by :func:`tempfile.mkstemp`) in
its destination's directory, mode 0600, fsynced, checked again and renamed into place; on any
failure the temporary file is removed, so nothing partial is left. Temporary files of runs that were
killed are removed by the next writer in that directory (:func:`reap_stale`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
from types import TracebackType
from typing import BinaryIO

from notmyfault.base.lifetime import ended

TEMP_PREFIX = ".notmyfault-tmp-"
"""How our temporary files start: the writer's pid follows, then a random part."""

_TEMP = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
_LEGACY = re.compile(r"\.incoming-dump\.(\d+)(?:\.\d+)?$")  # dump PID's temporary name before this module


class WriteFailed(Exception):
    """A file could not be written; the message is one line naming the file and the reason."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_destination(path: str) -> None:
    """Raise WriteFailed unless ``path`` is absent or a regular file owned by this user.

    notmyfault never writes through a symbolic link (one planted in a shared directory would make
    root overwrite the link's target), never replaces a device, FIFO or directory, and never replaces
    another user's file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise WriteFailed(f"cannot write {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteFailed(
            f"{path} is {_kind(st.st_mode)}: notmyfault writes only regular files and never through a link;"
            " give another name"
        )
    if st.st_uid != os.geteuid():
        raise WriteFailed(
            f"{path} belongs to uid {st.st_uid}: notmyfault replaces only its own user's files; give another name"
        )


def check_directory(directory: str, create: bool = True) -> None:
    """Make sure ``directory`` exists (creating it, mode 0700, if ``create``) and is a directory;
    WriteFailed with the reason if not."""
    try:
        if create:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        elif not os.path.lexists(directory):
            raise WriteFailed(f"the directory {directory} does not exist: create it, or write elsewhere")
        if not os.path.isdir(directory):
            raise WriteFailed(f"{directory} is not a directory: give a directory to write in")
    except FileExistsError:
        raise WriteFailed(f"{directory} is not a directory: give a directory to write in") from None
    except OSError as e:
        raise WriteFailed(f"cannot create the directory {directory}: {e.strerror}") from None


def write_error(path: str, e: OSError) -> WriteFailed:
    """The one-line WriteFailed for an OSError met while writing ``path`` (ENOSPC, EIO, EDQUOT ...)."""
    hint = {
        errno.ENOSPC: ": free some space or write elsewhere",
        errno.EDQUOT: ": the disk quota is used up; free some space or write elsewhere",
        errno.EROFS: ": the filesystem is read-only; write elsewhere",
        errno.EACCES: ": no permission; write elsewhere",
        errno.EPERM: ": no permission; write elsewhere",
    }.get(e.errno or 0, "")
    return WriteFailed(f"cannot write {path}: {e.strerror or e}{hint}")


def reap_stale(directory: str) -> list[str]:
    """Remove the temporary files that killed runs of notmyfault left in ``directory``: only regular
    files of this user whose writer (the pid in the name) is gone. Returns the paths removed."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        m = _TEMP.match(name) or _LEGACY.match(name)
        if not m or int(m.group(1)) == os.getpid() or not ended(int(m.group(1))):
            continue
        path = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid():
                os.unlink(path)
                removed.append(path)
    return removed


def _fsync_dir(directory: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SafeFile:
    """A file being written for ``path``: ``file`` is open on a temporary file of its directory,
    :meth:`commit` puts it in place, :meth:`discard` (or leaving a ``with`` block by an exception)
    removes it. Leaving the ``with`` block normally commits to ``path``.

    OSErrors of the writes are the caller's; :func:`write_error` words them."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.directory = os.path.dirname(self.path)
        check_destination(self.path)
        reap_stale(self.directory)
        try:
            fd, self.temp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=self.directory)
        except OSError as e:
            raise write_error(self.path, e) from None
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.done = False

    def commit(self, path: str | None = None, replace: bool = True) -> str:
        """Flush and fsync the file, and put it at ``path`` (default: the path given) in the same
        directory. ``replace``: replace a regular file of ours there; else never replace anything
        (``NAME-2``, ``NAME-3`` ... are tried). Returns the path written; WriteFailed if it failed."""
        dest = os.path.abspath(path or self.path)
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if replace:
                check_destination(dest)
                os.replace(self.temp, dest)
            else:
                dest = self._link_new(dest)
        except OSError as e:
            self.discard()
            raise write_error(dest, e) from None
        except WriteFailed:
            self.discard()
            raise
        self.done = True
        _fsync_dir(self.directory)
        return dest

    def _link_new(self, dest: str) -> str:
        """Move the temporary file to ``dest`` or, if taken, to the first free ``dest-N``: by a hard
        link, which never replaces a file (renaming, on a filesystem without links)."""
        for n in range(1, 1000):
            name = dest if n == 1 else f"{dest}-{n}"
            try:
                os.link(self.temp, name)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                    raise
                if os.path.lexists(name):  # a filesystem without hard links: check, then rename
                    continue
                os.rename(self.temp, name)
                return name
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp)
            return name
        raise WriteFailed(f"cannot write {dest}: 999 files of that name exist")

    def discard(self) -> None:
        """Close and remove the temporary file (nothing is left)."""
        with contextlib.suppress(OSError):
            self.file.close()
        if not self.done:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
        self.done = True

    def __enter__(self) -> SafeFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None and not self.done:
            self.commit()
        else:
            self.discard()


def write_file(path: str, data: bytes | str) -> str:
    """Write ``data`` (str as UTF-8) to ``path`` whole and safely; WriteFailed with one line if not."""
    raw = data.encode() if isinstance(data, str) else data
    with SafeFile(path) as f:
        try:
            f.file.write(raw)
        except OSError as e:
            raise write_error(f.path, e) from None
        return f.commit()


def user_cache_dir() -> str:
    """The user's cache directory: $XDG_CACHE_HOME, else ~/.cache."""
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def private_temp_dir(kind: str) -> str:
    """A new directory of this process for temporary files of ``kind`` (``$TMPDIR/notmyfault-KIND-
    PID-XXXXXXXX``, mode 0700). Those that ended processes left (a worker killed at its timeout, a
    run killed with SIGKILL: no exit handler of theirs ran) are removed first."""
    base = tempfile.gettempdir()
    prefix = f"notmyfault-{kind}-"
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            head = name[len(prefix) :].split("-", 1)[0] if name.startswith(prefix) else ""
            if head.isdigit() and int(head) != os.getpid() and ended(int(head)):
                _remove_ours(os.path.join(base, name))
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base)


def remove_temp_dirs_of(kind: str, pid: int) -> list[str]:
    """Remove the temporary directories of ``kind`` that process ``pid`` made (it ended: its parent
    reaped it). Returns the directories removed."""
    base = tempfile.gettempdir()
    prefix = f"notmyfault-{kind}-{pid}-"
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            if name.startswith(prefix) and _remove_ours(os.path.join(base, name)):
                removed.append(os.path.join(base, name))
    return removed


def _remove_ours(path: str) -> bool:
    """Remove the directory ``path`` if it is a real directory of this user (not a link)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)
