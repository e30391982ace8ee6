"""Shared by the benchmark scripts: machine facts, measurements kept as data,
sections rendered from data.

Every script measures into a dict (saved as benchmarks/data/NAME.json, committed) and renders its
RESULTS.md section from that dict alone, so the prose always matches the numbers it sits next to:
`--render` rewrites a section from the saved data without measuring again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from raftkit import files  # noqa: E402

RESULTS = Path(__file__).with_name("RESULTS.md")
DATA = Path(__file__).with_name("data")
HEADER = (
    "# Benchmark results\n\n"
    "Each section is written by the script named in it; rerun that script to refresh it.\n"
)


def machine() -> dict:
    """Where the numbers were taken: CPU, its bf16 units, GPU, versions, the commit."""
    import torch

    from raftkit.models import fast_bf16_cpu

    cpu, amx = "", False
    try:
        info = Path("/proc/cpuinfo").read_text()
        amx = " amx_bf16" in info
        cpu = next(
            ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    # a copy without .git (a lent GPU machine gets the working tree only) names it in RAFTKIT_COMMIT
    commit = (
        os.environ.get("RAFTKIT_COMMIT")
        or subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "cpu_bf16": fast_bf16_cpu(),
        "amx": amx,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "commit": commit,
        "date": date.today().isoformat(),
    }


def describe(m: dict) -> str:
    """One line about the machine of a measurement: the CPU's model name and its bf16 unit first,
    since the same step runs several times faster with AMX than without."""
    # data saved before "amx" was recorded came from the two kinds of machine this project runs
    # on: the Xeon has AMX, the EPYC has AVX512-BF16 only
    amx = m.get("amx", "Xeon" in m.get("cpu", ""))
    bf16 = ("AMX" if amx else "AVX512-BF16, no AMX") if m.get("cpu_bf16") else "no fast bf16"
    return (
        f"{m.get('cpu') or 'CPU'} ({bf16}), {m['arch']}, {m['cores']} cores, "
        f"{m['gpu'] or 'no GPU'}, Python "
        f"{m['python']}, torch {m['torch']}, commit {m['commit']}, {m['date']}"
    )


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


def write_section(key: str, body: str, measured: str | None = None) -> Path:
    """Replace (or append) the section between <!-- bench:KEY --> markers in RESULTS.md,
    atomically."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    block = f"{start}\n{body.strip()}\n\n_Measured {measured or date.today().isoformat()}._\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.DOTALL)
    text = (
        pattern.sub(lambda _: block, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + block + "\n"
    )
    return files.write_text(RESULTS, text)


def save(name: str, data: dict) -> Path:
    return files.write_json(DATA / f"{name}.json", data)


def load(name: str) -> dict:
    path = DATA / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"no saved measurements at {path}: run the benchmark first")
    return json.loads(path.read_text(encoding="utf-8"))


def bench_main(
    name: str,
    doc: str,
    measure: Callable[[argparse.Namespace], dict],
    render: Callable[[dict], str],
    add_args: Callable[[argparse.ArgumentParser], None] | None = None,
    section: str | None = None,
) -> None:
    """The command line every benchmark shares: measure (or --render saved data), save, write the
    section."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--render", action="store_true", help="rewrite the RESULTS.md section from saved data only"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave RESULTS.md and the data alone"
    )
    if add_args:
        add_args(parser)
    args = parser.parse_args()
    key = section(args) if callable(section) else (section or name)
    if args.render:
        data = load(key)
    else:
        from raftkit.ui import quiet_libraries

        quiet_libraries()
        data = {
            "machine": machine(),
            "command": "python "
            + " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
            **measure(args),
        }
        if not args.no_write:
            save(key, data)
    body = render(data)
    print(body)
    if not args.no_write:
        print(f"wrote {write_section(key, body, data['machine']['date'])}", file=sys.stderr)
