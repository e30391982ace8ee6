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

from raftkit.files import read_jsonl, write_jsonl  # noqa: F401  (the benchmarks read and write QA files)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "benchmarks"
WORK = ROOT / "benchmarks" / "work"


def shorten(arg: str) -> str:
    """A path as a user would type it from the project root (../shared/... for the shared data)."""
    return arg.replace(str(SHARED.parent) + "/", "../shared/").replace(str(ROOT) + "/", "")


class Steps:
    """Runs raftkit commands in order, recording each one's command line and wall time."""

    def __init__(self):
        self.log: list[tuple[str, str, float]] = []  # (step, command, seconds)

    def run(self, step: str, *argv: str) -> float:
        cmd = [sys.executable, "-m", "raftkit.cli", *argv]
        shown = "raftkit " + " ".join(shorten(a) for a in argv)
        print(f"\n== {step}: {shown}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"step '{step}' failed with exit code {proc.returncode}: {shown}")
        self.log.append((step, shown, seconds))
        return seconds

    def records(self) -> list[dict]:
        return [{"step": step, "command": cmd, "seconds": sec} for step, cmd, sec in self.log]


def steps_table(records: list[dict]) -> str:
    """The Markdown table of a benchmark's steps: each a raftkit command, with its seconds."""
    from results import table

    return table(
        ["step", "command", "seconds"],
        [[r["step"], f"`{r['command']}`", round(r["seconds"], 1)] for r in records],
    )


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


def cell(stat: dict | None, signed: bool = False) -> str:
    """A metric of results.json in points (x100) with its interval: `72.5 [60.0, 85.0]`; `-` when
    it does not apply. `signed` for differences."""
    if not stat or stat.get("value") is None:
        return "-"
    fmt = (lambda v: f"{100 * v:+.1f}") if signed else (lambda v: f"{100 * v:.1f}")
    ci = f" [{fmt(stat['ci'][0])}, {fmt(stat['ci'][1])}]" if stat.get("ci") else ""
    return fmt(stat["value"]) + ci


def per_question(report_dir: Path) -> list[dict]:
    with open(report_dir / "per_question.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def accuracy_by(
    rows: list[dict], group_of: dict[str, str]
) -> dict[tuple[str, str], tuple[float, int]]:
    """{(system, group): (accuracy, n)} from per_question.csv rows;
    group_of maps question id -> group."""
    acc: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        group = group_of.get(r["qid"])
        if group is None or r["correct"] in ("", "None"):
            continue
        acc.setdefault((r["system"], group), []).append(r["correct"] == "True")
    return {k: (sum(v) / len(v), len(v)) for k, v in acc.items()}


def results(report_dir: Path) -> dict:
    return json.loads((report_dir / "results.json").read_text(encoding="utf-8"))


# Shared settings of the real-data benchmarks: 192-token chunks keep RAFT prompts
# (oracle + 2 distractors) near 800 tokens, which a 135M model trains on in minutes on a CPU.
CHUNKING = ["--set", "retrieval.chunking.size=192", "--set", "retrieval.chunking.overlap=24"]


def build_raft(
    steps: Steps, corpus: Path, qa: Path, out: Path, idx: str, index: str, seed: int, *extra: str
) -> None:
    """RAFT data from a QA file whose answers are given
    (yes/no or choice text: not required verbatim)."""
    steps.run(
        "RAFT data from the training questions",
        "build-dataset",
        str(corpus),
        "--qa",
        str(qa),
        "--out",
        str(out),
        "--config",
        "recipes/raft_build.yaml",
        *CHUNKING,
        "--set",
        f"retrieval.indexes_dir={idx}",
        "--set",
        f"index_name={index}",
        "--set",
        "qa.require_answer_in_docs=false",
        "--set",
        "assembly.num_distractors=2",
        "--set",
        "assembly.eval_fraction=0",
        "--set",
        f"assembly.seed={seed}",
        *extra,
    )


def train_sft(
    steps: Steps,
    label: str,
    data: Path,
    out: Path,
    model: str,
    max_steps: int,
    seed: int,
    *extra: str,
    lr: str = "5e-4",
) -> None:
    """SFT-LoRA from recipes/sft_lora.yaml, 4 examples per optimizer step (CPU-sized);
    `extra` are more --set args."""
    steps.run(
        label,
        "train",
        "--config",
        "recipes/sft_lora.yaml",
        "--set",
        f"model={model}",
        "--set",
        f"data.path={data}",
        "--set",
        "data.eval_path=",
        "--set",
        f"output_dir={out}",
        "--set",
        "data.max_length=1024",
        "--set",
        f"optim.max_steps={max_steps}",
        "--set",
        "optim.batch_size=4",
        "--set",
        "optim.grad_accum=1",
        "--set",
        f"optim.lr={lr}",
        "--set",
        f"seed={seed}",
        *extra,
        "--overwrite",
    )


def compare_config(
    systems: list[dict], questions: Path, idx: str, model: str, seed: int, max_new_tokens: int = 64
) -> dict:
    """A compare recipe scoring multiple choice by log-likelihood only (the benchmarks' accuracy).

    Choices are scored after each system's own reply up to `<ANSWER>:` (`mc_after: reply`): the RAFT
    model answers after quoting its evidence, and scored at the reply's first token (where it would
    start a quote) its answer line measured 27.5% on PubMedQA --quick, 38 of 40 picks 'no'.
    """
    return {
        "systems": systems,
        "questions": {"path": str(questions), "max_questions": 0, "seed": seed},
        "generation": {"model": model, "max_new_tokens": max_new_tokens, "batch_size": 16},
        "indexes_dir": idx,
        "scoring": {"mc": "loglik", "mc_after": "reply", "ragas": False},
        "freshness": {"enable": False},
        "unanswerable": {"use_status": False, "holdout_docs": 0.0},
        "bootstrap": {"samples": 1000, "seed": seed},
    }


def add_args(parser) -> None:
    """The arguments every real-data benchmark takes."""
    parser.add_argument(
        "--quick", action="store_true", help="a smaller version: fewer questions and steps"
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--seed", type=int, default=0)


def section(name: str):
    """The RESULTS.md section (and data file) of a benchmark: NAME, or NAME-quick with --quick."""
    return lambda args: f"{name}-quick" if args.quick else name


def workdir(key: str) -> Path:
    """A clean work folder benchmarks/work/KEY (git-ignored)."""
    import shutil

    work = WORK / key
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def metrics(report_dir: Path) -> dict:
    """{system: {metric: {value, ci, n}}} of a compare report."""
    return {s["name"]: s["metrics"] for s in results(report_dir)["systems"]}


def compare_step(steps: Steps, work: Path, cfg: dict, label: str) -> Path:
    """Write the run's compare recipe (first line: its command) and run it; returns the report."""
    path = write_yaml(
        work / "compare.yaml",
        cfg,
        f"raftkit compare --config {work / 'compare.yaml'} --out {work / 'report'}",
    )
    steps.run(label, "compare", "--config", str(path), "--out", str(work / "report"), "--overwrite")
    return work / "report"
