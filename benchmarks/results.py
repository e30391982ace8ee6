"""Shared by the benchmark scripts: machine facts and replacing one section of RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import resource
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from raftkit import atomic  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script named in it; rerun that script to refresh it.\n"


def machine() -> str:
    """A one-line description of where the numbers were taken."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 3 significant decimals where they are small."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(key: str, body: str) -> Path:
    """Replace (or append) the section between <!-- bench:KEY --> markers in RESULTS.md, atomically."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{body.strip()}\n\n_Measured {date.today().isoformat()}._\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    return atomic.write_text(RESULTS, text)
