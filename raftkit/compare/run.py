"""`raftkit compare`: answer the same questions with every system, score them, write the report."""

from __future__ import annotations

import collections
import hashlib
import json
import platform
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from raftkit import __version__, atomic, config
from raftkit.compare import results as res
from raftkit.compare import systems as sysrun
from raftkit.compare.config import CompareConfig
from raftkit.compare.questions import Question, load_questions
from raftkit.compare.report import write_report
from raftkit.errors import RaftkitError
from raftkit.ui import say

REPORT_FILES = ("results.json", "per_question.csv", "report.md", "report.html")
WORK = ".work"
PACKAGES = ("torch", "transformers", "peft", "trl", "sentence-transformers", "faiss-cpu", "ragas", "numpy",
            "matplotlib")


@dataclass
class ComparisonReport:
    out: Path
    results: dict  # what results.json holds
    rows: list[dict] = field(default_factory=list)  # per_question.csv, one per (question, system)
    files: dict[str, Path] = field(default_factory=dict)

    def metric(self, system: str, name: str) -> float | None:
        """The value of metric `name` for `system` (None when it does not apply)."""
        s = next(s for s in self.results["systems"] if s["name"] == system)
        return (s["metrics"].get(name) or {}).get("value")


def _versions() -> dict:
    out = {"python": platform.python_version(), "raftkit": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _model_info(name: str) -> dict:
    """What identifies a system's model: the name, and for a `raftkit train` run its run.json essentials."""
    info: dict = {"model": name}
    path = Path(name).expanduser()
    run_json = path / "run.json"
    if run_json.is_file():
        run = json.loads(run_json.read_text())
        info["run_id"] = path.resolve().name
        info["run"] = {k: run[k] for k in ("stage", "method", "base_model", "dataset", "steps") if k in run}
    elif path.is_dir():
        info["path"] = str(path.resolve())
    return info


def _index_info(index) -> dict:
    m = index.manifest
    digest = hashlib.sha256(json.dumps({k: v["hash"] for k, v in sorted(m["documents"].items())}).encode())
    return {"name": m["name"], "path": str(index.path), "updated": m.get("updated"), "source": m.get("source"),
            "embedder": m["embedder"]["model"], "counts": m["counts"], "documents_sha256": digest.hexdigest()[:16]}


def _prepare_out(out: Path, cfg: CompareConfig, overwrite: bool) -> Path:
    """The work folder; refuses to mix a finished report or a different config into `out`."""
    work = out / WORK
    saved = work / "config.yaml"
    if (out / "results.json").exists() and not overwrite:
        raise RaftkitError(f"{out} already holds a report; use --overwrite to replace it")
    if overwrite:
        shutil.rmtree(work, ignore_errors=True)
        for name in REPORT_FILES + ("config.yaml",):
            (out / name).unlink(missing_ok=True)
    elif saved.is_file() and config.read_yaml(saved) != config.to_dict(cfg):
        raise RaftkitError(f"{out} holds an unfinished comparison with another config; rerun with the same "
                           f"config to resume, or use --overwrite to start again")
    work.mkdir(parents=True, exist_ok=True)
    config.save_resolved(cfg, work)
    return work


def _reference_contexts(questions: list[Question], index) -> dict[str, list[str]]:
    by_doc: dict[str, list[str]] = collections.defaultdict(list)
    for c in index.chunks:
        by_doc[c.doc_id].append(c.text)
    return {q.id: [t for d in q.doc_ids for t in by_doc.get(d, [])] for q in questions}


def _check_models(cfg: CompareConfig) -> None:
    """Resolve every model before anything is written, naming the system whose model is unusable."""
    from raftkit.models import resolve_generator

    for s in cfg.systems:
        try:
            resolve_generator(s.model)
        except RaftkitError as e:
            raise RaftkitError(f"system '{s.name}': {e}") from None


def compare(cfg: CompareConfig, out: str | Path, overwrite: bool = False, *, generator_factory=None,
            command: str | None = None) -> ComparisonReport:
    """Run, score and report every system of `cfg` into `out`; resumes an interrupted run of the same config.

    Raises RaftkitError for unusable questions, missing indexes or an existing report (without overwrite).
    """
    out = Path(out)
    questions = load_questions(cfg)  # bad input fails here, before anything is written
    indexes = sysrun.load_indexes(cfg)
    if generator_factory is None and cfg.generation.backend == "hf":
        _check_models(cfg)
    work = _prepare_out(out, cfg, overwrite)
    retrieved = sysrun.retrieve(cfg, questions, indexes)
    records = sysrun.run_all(cfg, questions, retrieved, work, generator_factory)
    by_id = {q.id: q for q in questions}
    llm = res.judge_llm(cfg) if cfg.scoring.ragas and cfg.scoring.judge.kind != "none" else None
    refs = {name: _reference_contexts(questions, index) for name, index in indexes.items()}
    all_rows, systems, notes = [], [], []
    for s in cfg.systems:
        rows = [res.score_record(by_id[r["qid"]], r, s, cfg.scoring.mc) for r in records[s.name]]
        if cfg.scoring.ragas:
            contexts = {q: r.texts[:s.top_k] for q, r in retrieved.get(s.index, {}).items()}
            if not res.add_ragas(rows, s, contexts, refs.get(s.index, {}), cfg, llm):
                notes.append(f"ragas metrics are missing for {s.name} (failed or over scoring.ragas_timeout_s).")
            elif llm is not None and not res.summarize(rows, cfg).keys() & {"ragas_answer_correctness",
                                                                             "ragas_faithfulness"}:
                notes.append(f"the judge gave no usable verdict for {s.name} (every judged score is NaN: "
                             f"a small judge rarely writes the JSON ragas parses).")
        all_rows += rows
        systems.append({"name": s.name, "model": s.model, "mode": s.mode, "index": s.index, "top_k": s.top_k,
                        "model_info": _model_info(s.model), "questions": len(rows),
                        "speed": sysrun.speed(work, s.name), "metrics": res.summarize(rows, cfg)})
    counts = collections.Counter("holdout" if q.holdout else q.status for q in questions)
    results = {
        "raftkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "questions": {"source": cfg.questions.path, "count": len(questions), "by_status": dict(sorted(counts.items())),
                      "ids": [q.id for q in questions]},
        "bootstrap": config.to_dict(cfg.bootstrap),
        "systems": systems,
        "definitions": {k: v for k, v in res.DEFINITIONS.items()
                        if any(k in s["metrics"] for s in systems) or not k.startswith("ragas_")},
        "reproduce": {
            "command": command or f"raftkit compare --config {out / 'config.yaml'} --out {out}",
            "models": {s["name"]: s["model_info"] for s in systems},
            "indexes": {name: _index_info(index) for name, index in indexes.items()},
            "seeds": {"generation": cfg.generation.seed, "questions": cfg.questions.seed,
                      "bootstrap": cfg.bootstrap.seed, "holdout": cfg.unanswerable.seed},
            "generation": {k: v for k, v in config.to_dict(cfg.generation).items() if k not in ("model", "api_key_env")},
            "versions": _versions(),
        },
        "config": config.to_dict(cfg),
        "notes": notes,
    }
    config.save_resolved(cfg, out)
    files = write_report(out, results, all_rows)
    say(f"wrote {', '.join(files)} to {out}")
    return ComparisonReport(out, results, all_rows, files)


def command(args) -> None:
    """CLI handler of `raftkit compare --config C --out DIR [--set k=v] [--overwrite]`."""
    cfg = config.load(CompareConfig, args.config, args.set)
    sets = "".join(f" --set {s}" for s in args.set)
    cmd = f"raftkit compare --config {args.config}{sets} --out {args.out}" + (" --overwrite" if args.overwrite else "")
    report = compare(cfg, args.out, overwrite=args.overwrite, command=cmd)
    print(f"report: {report.out / 'report.html'}")
    print(summary_table(report.results))


# The few numbers a person reads first; the report has the rest with their intervals.
SUMMARY = [("accuracy", "accuracy"), ("accuracy_changed", "changed facts"), ("stale_rate", "stale"),
           ("accuracy_added", "added facts"), ("unanswerable_answered_rate", "unanswerable answered"),
           ("confident_wrong_rate", "confident wrong")]


def summary_table(results: dict) -> str:
    """A plain-text table of the headline metrics (%), one row per system; metrics nobody has are left out."""
    systems = results["systems"]
    cols = [(k, label) for k, label in SUMMARY
            if any((s["metrics"].get(k) or {}).get("value") is not None for s in systems)]
    width = max(len(s["name"]) for s in systems) + 2
    lines = ["  " + "system".ljust(width) + "".join(label.rjust(len(label) + 3) for _, label in cols)]
    for s in systems:
        cells = []
        for k, label in cols:
            v = (s["metrics"].get(k) or {}).get("value")
            cells.append(("–" if v is None else f"{100 * v:.1f}%").rjust(len(label) + 3))
        lines.append("  " + s["name"].ljust(width) + "".join(cells))
    return "\n".join(lines)
