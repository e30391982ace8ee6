"""Files: atomic writes (a temp file beside the target, then a rename) and the one JSON-lines
reader.

A crash never leaves a half-written file behind and an existing one survives a failed run. Files are
created with the permissions the user's umask gives (mkstemp alone would make them private, 0600).
JSON lines are split on "\\n" only: str.splitlines() would also split inside a string holding
U+2028.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftkit.errors import RaftkitError


def umask() -> int:
    """The process umask (read without changing it for longer than two calls)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: list[dict]) -> Path:
    """Write one JSON object per line atomically."""
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@dataclass
class JsonLines:
    """The objects of a JSON-lines file with their line numbers, and the lines that are not
    objects."""

    rows: list[tuple[int, dict]] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def scan_jsonl(path: str | Path) -> JsonLines:
    """Every line of a JSON-lines file: objects kept with their line numbers, others reported (blank
    lines skipped).

    Raises RaftkitError when the file is missing or not UTF-8 text.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RaftkitError(f"file not found: {path}") from None
    except UnicodeDecodeError:
        raise RaftkitError(f"{path}: not UTF-8 text") from None
    out = JsonLines()
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            out.bad.append((n, "not valid JSON"))
            continue
        if isinstance(row, dict):
            out.rows.append((n, row))
        else:
            out.bad.append((n, "not a JSON object"))
    return out


def read_jsonl(path: str | Path) -> list[dict]:
    """The objects of a JSON-lines file; raises RaftkitError naming the first bad line."""
    lines = scan_jsonl(path)
    if lines.bad:
        n, why = lines.bad[0]
        raise RaftkitError(f"{path}: line {n} is {why}")
    return [row for _, row in lines.rows]
