"""Shared by the real-data benchmarks: run raftkit commands exactly as a user would, and time them.

Each step is a `raftkit` command line (printed before it runs), so every number in RESULTS.md can be
reproduced by hand. Work files go to benchmarks/work/<name>/ (git-ignored); the shared data in
../shared/benchmarks is read in place, never copied.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
WORK = ROOT / "benchmarks" / "work"


class Steps:
    """Runs raftkit commands in order, recording each one's command line and wall time."""

    def __init__(self):
        self.log: list[tuple[str, str, float]] = []  # (step, command, seconds)

    def run(self, step: str, *argv: str) -> float:
        cmd = [sys.executable, "-m", "raftkit.cli", *argv]
        shown = "raftkit " + " ".join(argv)
        print(f"\n== {step}: {shown}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"step '{step}' failed with exit code {proc.returncode}: {shown}")
        self.log.append((step, shown, seconds))
        return seconds

    def table_rows(self) -> list[list]:
        return [[step, f"`{cmd}`", round(sec, 1)] for step, cmd, sec in self.log]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_yaml(path: Path, data: dict, command: str) -> Path:
    """A recipe written for this run; its first line is the command that uses it, as in recipes/."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {command}\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def split_by_document(rows: list[dict], test_n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, test): whole documents go to one side, so no test evidence is trained on."""
    docs = sorted({r["doc_ids"][0] for r in rows})
    random.Random(seed).shuffle(docs)
    test_docs: set[str] = set()
    for d in docs:
        if sum(r["doc_ids"][0] in test_docs for r in rows) >= test_n:
            break
        test_docs.add(d)
    test = [r for r in rows if r["doc_ids"][0] in test_docs]
    train = [r for r in rows if r["doc_ids"][0] not in test_docs]
    return train, test


def per_question(report_dir: Path) -> list[dict]:
    with open(report_dir / "per_question.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def accuracy_by(rows: list[dict], group_of: dict[str, str]) -> dict[tuple[str, str], tuple[float, int]]:
    """{(system, group): (accuracy, n)} from per_question.csv rows; group_of maps question id -> group."""
    acc: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        group = group_of.get(r["qid"])
        if group is None or r["correct"] in ("", "None"):
            continue
        acc.setdefault((r["system"], group), []).append(r["correct"] == "True")
    return {k: (sum(v) / len(v), len(v)) for k, v in acc.items()}


def results(report_dir: Path) -> dict:
    return json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
