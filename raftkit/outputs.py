"""Output folders (indexes, datasets, run folders, reports, exports): whose they are, one writer at
a time, and a replacement that a crash at any moment leaves recoverable.

- **Ownership.** Every folder raftkit writes carries `.raftkit-output.json` naming its kind. A
  command replaces or deletes only a folder of its own kind; anything else is refused, whatever
  `--overwrite` says.
- **Locks.** An advisory `fcntl` lock on `.NAME.lock` beside the folder; a second writer gets an
  error naming the holder's pid instead of mixing its files in.
- **Swap.** A new folder is built under a temporary name, then: rename it to `.NAME.new` (complete),
  move the old folder to `.NAME.old`, rename `.NAME.new` to NAME, delete `.NAME.old`. A kill between
  any two steps leaves the old or the new folder under one of those names, and `recover()` (run by
  the next command that takes the lock) finishes the swap.

`writing()` puts the three together for a command's output; with `--overwrite` it builds in
`.NAME.overwrite` beside the old folder and swaps that in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

from raftkit.errors import RaftkitError
from raftkit.files import umask, write_json

MARKER = ".raftkit-output.json"
_PLAIN = re.compile(r"^[\w][\w.-]*$")
_rename = os.replace  # every step of a swap goes through here (the crash tests hook it)


def plain_name(name: str, what: str) -> str:
    """`name` when it is a plain folder name (no '/', not '.' or '..'); else RaftkitError."""
    if not _PLAIN.match(name or "") or name in (".", ".."):
        raise RaftkitError(
            f"{what} '{name}' must be a plain name: letters, digits, '.', '_' and '-', "
            f"not starting with '.' (no paths)"
        )
    return name


def mark(folder: str | Path, kind: str) -> None:
    """Record that `folder` is a raftkit output of `kind`."""
    from datetime import datetime

    from raftkit import __version__

    write_json(
        Path(folder) / MARKER,
        {
            "kind": kind,
            "raftkit_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def kind_of(folder: str | Path) -> str | None:
    """The kind of raftkit output `folder` is, from its marker; None when it has no readable one."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))["kind"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def check_replaceable(path: str | Path, kind: str, what: str) -> None:
    """Refuse (RaftkitError) to replace `path` unless it is missing, an empty folder or a `kind`
    output."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise RaftkitError(
            f"{what} {path} exists and is not a folder; raftkit replaces only its own outputs"
        )
    if is_empty_dir(path) or kind_of(path) == kind:
        return
    raise RaftkitError(
        f"{what} {path} exists and is not a raftkit {kind} folder; refusing to replace it "
        f"(choose another name or path)"
    )


def _side(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}")


def writable_parent(path: Path, what: str) -> Path:
    """The parent folder of `path`, created if needed; RaftkitError when it cannot hold files."""
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise RaftkitError(f"{what}: {parent} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RaftkitError(f"{what}: cannot create {parent} ({e.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RaftkitError(f"{what}: cannot write to {parent} (permission denied)")
    return parent


@contextlib.contextmanager
def lock(path: str | Path, what: str, wait: bool = False) -> Iterator[bool]:
    """Hold the advisory lock of output `path` (file `.NAME.lock` beside it), after repairing a
    half-done swap.

    Held by another process: RaftkitError naming its pid (or, with `wait`, block until it is free).
    The lock goes when the block ends or the process dies.
    """
    path = Path(path)
    writable_parent(path, what)
    lock_file = _side(path, "lock")
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RaftkitError(
                f"{what} at {path} is in use by another raftkit process (pid {holder}); "
                f"wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        recover(path)
        yield True
    finally:
        os.close(fd)  # closing drops the flock


@contextlib.contextmanager
def try_lock(path: str | Path) -> Iterator[bool]:
    """For readers: the lock when free (yields True, after repairing a half-done swap), else
    False."""
    path = Path(path)
    held, stack = False, contextlib.ExitStack()
    if path.parent.is_dir() and os.access(
        path.parent, os.W_OK
    ):  # read-only places have nobody writing
        try:
            held = stack.enter_context(lock(path, "output"))
        except RaftkitError:
            held = False  # a writer holds it: read what is there
    with stack:
        yield held


def recover(path: str | Path) -> None:
    """Finish (or undo) a swap of `path` that a crash interrupted; remove abandoned temp folders.

    Call with the lock held. A complete `.NAME.new` wins: it is what the interrupted command built.
    """
    path = Path(path)
    new, old = _side(path, "new"), _side(path, "old")
    if new.is_dir():
        if path.exists() and not old.exists():
            _rename(path, old)
        if not path.exists():
            _rename(new, path)
    if old.exists() and not path.exists():
        _rename(old, path)  # the new folder vanished: put the old one back
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if new.exists():
        shutil.rmtree(new, ignore_errors=True)
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def swap(new_folder: str | Path, path: str | Path) -> Path:
    """Make the complete folder `new_folder` the folder `path` (replacing any old one)
    crash-safely."""
    path, new_folder = Path(path), Path(new_folder)
    new, old = _side(path, "new"), _side(path, "old")
    for stale in (new, old):
        if stale.exists():
            shutil.rmtree(stale)
    _rename(new_folder, new)
    if path.exists():
        _rename(path, old)
    _rename(new, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


@contextlib.contextmanager
def writing(
    path: str | Path,
    kind: str,
    what: str,
    overwrite: bool = False,
    *,
    option: str = "--out",
    checked: bool = False,
    resume_overwrite: Callable[[Path], bool] | None = None,
    check_existing: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Lock output `path` and yield the folder to write it in, swapped in as `path` when the block
    ends without an exception; raises RaftkitError when `path` is in use or not a `kind` output.

    The folder is `path`, or with `overwrite` of a non-empty `path` its staging folder. `what` names
    the output in the lock's error, `option` how the user gave `path`. With the lock held and before
    anything is written: check_replaceable(path, kind, option), unless the caller `checked` it
    already; then the caller's resume rule. `resume_overwrite(staging folder)`
    says whether an existing one is an interrupted overwrite to continue (else, and by default, it
    is removed); `check_existing(path)` raises the caller's error for a non-empty `path` that may
    not be written into without `overwrite`. The caller marks the folder (mark()) before its first
    write, so that a crash leaves an output the next command recognises. On an exception nothing is
    swapped or removed: the folder stays for the next command to resume or remove.
    """
    path = Path(path)
    with lock(path, what):
        if not checked:
            check_replaceable(path, kind, option)
        where = path
        if path.exists() and not is_empty_dir(path):
            if overwrite:
                where = staging(path)
                if not (where.exists() and resume_overwrite and resume_overwrite(where)):
                    shutil.rmtree(where, ignore_errors=True)
            elif check_existing:
                check_existing(path)
        yield where
        if where != path:
            swap(where, path)


def staging(path: str | Path) -> Path:
    """Where `--overwrite` builds the replacement of `path` (beside it; swapped in when
    complete)."""
    return _side(Path(path), "overwrite")


def temp_folder(path: str | Path) -> Path:
    """An empty folder beside `path` (removed by recover() if abandoned), with the umask's
    permissions."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


@contextlib.contextmanager
def staged(path: str | Path, kind: str | None = None) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; on success it replaces `path` whole (see swap()).

    On any exception the temp folder is removed and `path` is left exactly as it was. With `kind`,
    the new folder is marked as that kind of output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder(path)
    try:
        yield tmp
        if kind:
            mark(tmp, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    swap(tmp, path)
