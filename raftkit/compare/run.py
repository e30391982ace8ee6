"""`raftkit compare`: answer the same questions with every system, score them, write the report.

The report folder is locked while a comparison runs. A rerun of the same config resumes from the
per-system checkpoints; `--overwrite` compares in `.OUT.overwrite` beside it and swaps the new
report in when it is complete, so an interrupted rerun leaves the old report as it was.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from raftkit import __version__, config, outputs
from raftkit.compare import extras, intervals, metrics
from raftkit.compare import systems as sysrun
from raftkit.compare.config import CompareConfig, SystemConfig
from raftkit.compare.questions import Question, load_questions
from raftkit.compare.report import SystemResult, cell, write_report
from raftkit.compare.scoring import ScoredRow, score_record
from raftkit.errors import RaftkitError
from raftkit.provenance import now, versions
from raftkit.runs import RunFolder
from raftkit.ui import say

WORK = ".work"


@dataclass
class ComparisonReport:
    out: Path
    results: dict  # what results.json holds
    systems: list[SystemResult] = field(default_factory=list)
    rows: list[ScoredRow] = field(
        default_factory=list
    )  # per_question.csv, one per (question, system)
    files: dict[str, Path] = field(default_factory=dict)

    def metric(self, system: str, name: str) -> float | None:
        """The value of metric `name` for `system` (None when it does not apply)."""
        stat = next(s for s in self.systems if s.name == system).metrics.get(name)
        return stat.value if stat else None


def _model_info(system: SystemConfig, cfg: CompareConfig) -> dict:
    """What identifies a system's model: the name, the server that ran it, and for a `raftkit train`
    run its run.json essentials."""
    name = system.model
    info: dict = {"model": name}
    g = system.generation_config(cfg.generation)
    if g.backend == "openai":
        info["served_by"] = g.base_url
    path = Path(name).expanduser()
    run = RunFolder.find(path)
    if run:
        info["run_id"] = path.resolve().name
        info["run"] = run.essentials()
    elif path.is_dir():
        info["path"] = str(path.resolve())
    return info


def _index_info(index) -> dict:
    m = index.manifest
    digest = hashlib.sha256(
        json.dumps({k: v["hash"] for k, v in sorted(m["documents"].items())}).encode()
    )
    return {
        "name": m["name"],
        "path": str(index.path),
        "updated": m.get("updated"),
        "source": m.get("source"),
        "embedder": m["embedder"]["model"],
        "counts": m["counts"],
        "documents_sha256": digest.hexdigest()[:16],
    }


@contextlib.contextmanager
def workspace(out: Path, cfg: CompareConfig, overwrite: bool) -> Iterator[Path]:
    """The folder this run writes (OUT, or its staging folder with --overwrite; see
    outputs.writing()); refuses (RaftkitError) to mix reports."""

    def check_existing(out: Path) -> None:
        saved = out / WORK / "config.yaml"
        if (out / "results.json").exists():
            raise RaftkitError(f"{out} already holds a report; use --overwrite to replace it")
        if saved.is_file() and config.read_yaml(saved) != config.to_dict(cfg):
            raise RaftkitError(
                f"{out} holds an unfinished comparison with another config; rerun with the same "
                f"config to resume, or use --overwrite to start again"
            )

    with outputs.writing(
        out, "report", "report", overwrite, check_existing=check_existing
    ) as where:
        (where / WORK).mkdir(parents=True, exist_ok=True)
        outputs.mark(where, "report")
        config.save_resolved(cfg, where / WORK)
        yield where


def _reference_contexts(questions: list[Question], index) -> dict[str, list[str]]:
    by_doc: dict[str, list[str]] = collections.defaultdict(list)
    for c in index.chunks:
        by_doc[c.doc_id].append(c.text)
    return {q.id: [t for d in q.doc_ids for t in by_doc.get(d, [])] for q in questions}


def _check_models(cfg: CompareConfig) -> None:
    """Resolve every model loaded here (and the tokenizer of every served system whose choices are
    scored) before anything is written, naming the system whose model is unusable."""
    from raftkit.models import resolve_path

    scored = cfg.scoring.mc in ("loglik", "both")
    for s in cfg.systems:
        g = s.generation_config(cfg.generation)
        if g.backend == "openai" and not scored:
            continue
        try:
            resolve_path(g.tokenizer or g.model if g.backend == "openai" else g.model)
        except RaftkitError as e:
            what = " (the tokenizer of the scored prompts)" if g.backend == "openai" else ""
            raise RaftkitError(f"system '{s.name}'{what}: {e}") from None


def compare(
    cfg: CompareConfig,
    out: str | Path,
    overwrite: bool = False,
    *,
    generator_factory=None,
    command: str | None = None,
) -> ComparisonReport:
    """Run, score and report every system of `cfg` into `out`; resumes an interrupted run of the
    same config.

    Raises RaftkitError for unusable questions, missing indexes or an existing report (without
    overwrite).
    """
    out = Path(out)
    questions = load_questions(cfg)  # bad input fails here, before anything is written
    indexes = sysrun.load_indexes(cfg)
    gates = sysrun.gates(cfg, indexes)
    if generator_factory is None:
        _check_models(cfg)
    with workspace(out, cfg, overwrite) as where:
        retrieved = sysrun.retrieve(cfg, questions, indexes, gates)
        records = sysrun.run_all(cfg, questions, retrieved, where / WORK, generator_factory, gates)
        rows, notes = _score(cfg, questions, records, retrieved, indexes)
        systems = _results(cfg, rows, where / WORK, gates)
        results = _results_json(
            cfg,
            questions,
            systems,
            indexes,
            notes,
            command or f"raftkit compare --config {out / 'config.yaml'} --out {out}",
        )
        config.save_resolved(cfg, where)
        written = write_report(
            where, results, systems, [r for s in cfg.systems for r in rows[s.name]]
        )
    say(f"wrote {', '.join(written)} to {out}")
    return ComparisonReport(
        out,
        results,
        systems,
        [r for s in cfg.systems for r in rows[s.name]],
        {k: out / v.name for k, v in written.items()},
    )


def _score(
    cfg: CompareConfig, questions, records, retrieved, indexes
) -> tuple[dict[str, list[ScoredRow]], list[str]]:
    """{system: scored rows} (ragas added when on) and the notes on what could not be scored."""
    by_id = {q.id: q for q in questions}
    llm = extras.judge_llm(cfg) if cfg.scoring.ragas else None
    refs = {name: _reference_contexts(questions, index) for name, index in indexes.items()}
    rows, notes = {}, []
    for s in cfg.systems:
        rows[s.name] = [
            score_record(by_id[r["qid"]], r, s.name, cfg.scoring.mc) for r in records[s.name]
        ]
        if cfg.scoring.ragas:
            contexts = {
                q: [h.chunk.text for h in hits[: s.top_k]]
                for q, hits in retrieved.get(s.index, {}).items()
            }
            note = extras.add_ragas(rows[s.name], s, contexts, refs.get(s.index, {}), cfg, llm)
            notes += [note] if note else []
    return rows, notes


def _results(
    cfg: CompareConfig, rows: dict[str, list[ScoredRow]], work: Path, gates: dict
) -> list[SystemResult]:
    b = cfg.bootstrap
    out = []
    for s in cfg.systems:
        stats = intervals.summarize(rows[s.name], b.samples, b.seed, b.level)
        paired = {}
        if cfg.baseline and s.name != cfg.baseline:
            paired = intervals.paired(
                rows[s.name], rows[cfg.baseline], list(stats), b.samples, b.seed, b.level
            )
        out.append(
            SystemResult(
                s.name,
                s.model,
                s.mode,
                s.index,
                s.top_k,
                {**_model_info(s, cfg), **_gate_info(gates.get(s.name))},
                len(rows[s.name]),
                sysrun.speed(work, s.name),
                stats,
                paired,
            )
        )
    return out


def _gate_info(check) -> dict:
    """What the report says of a system's evidence gate."""
    if check is None:
        return {"min_score": None}
    return {"min_score": check.min_score, "gate": check.describe(), "verifier": check.source}


def verdict(systems: list[SystemResult], baseline: str) -> list[str]:
    """One line per group with a verdict (metrics.GROUPS): who wins its verdict metric, and each
    system's paired difference against the baseline, with whether its interval excludes 0; then
    the cautions that apply."""
    lines = []
    for group in (g.name for g in metrics.GROUPS if g.verdict):
        m = next(
            (
                m
                for m in metrics.METRICS
                if m.group == group and m.verdict and any(m.name in s.metrics for s in systems)
            ),
            None,
        )
        if m is None:
            continue
        have = [s for s in systems if m.name in s.metrics]
        best = (min if m.lower_is_better else max)(have, key=lambda s: s.metrics[m.name].value)
        line = f"{group}: {m.label.lower()}, best {best.name} ({cell(best.metrics[m.name], m)[0]})"
        diffs = []
        for s in have:
            d = s.paired.get(m.name)
            if d is None or d.ci is None:
                continue
            better = d.value < 0 if m.lower_is_better else d.value > 0
            clear = d.ci[0] > 0 or d.ci[1] < 0
            value, ci = cell(d, m, signed=True)
            diffs.append(
                f"{s.name} {value} points {ci} "
                f"({('better' if better else 'worse') if clear else 'no clear difference'})"
            )
        if diffs:
            line += f"; against {baseline}: " + ", ".join(diffs)
        lines.append(line)
    return lines + _cautions(systems)


def _cautions(systems: list[SystemResult]) -> list[str]:
    """A line per (caution of metrics.CAUTIONS, system) whose metric reaches the caution's
    threshold."""
    lines = []
    for c in metrics.CAUTIONS:
        m = metrics.REGISTRY[c.metric]
        for s in systems:
            stat = s.metrics.get(c.metric)
            if stat is not None and stat.value is not None and stat.value >= c.at:
                lines.append(c.message.format(system=s.name, value=cell(stat, m)[0]))
    return lines


def _results_json(
    cfg: CompareConfig, questions, systems: list[SystemResult], indexes, notes, command
) -> dict:
    from raftkit.models import runtime

    counts = collections.Counter("holdout" if q.holdout else q.status for q in questions)
    used = {m for s in systems for m in s.metrics}
    return {
        "raftkit_version": __version__,
        "created": now(),
        "questions": {
            "source": cfg.questions.path,
            "count": len(questions),
            "by_status": dict(sorted(counts.items())),
            "ids": [q.id for q in questions],
        },
        "bootstrap": config.to_dict(cfg.bootstrap),
        "runtime": {"device": runtime(cfg.runtime).device, "dtype": runtime(cfg.runtime).dtype},
        "baseline": cfg.baseline or None,
        "verdict": verdict(systems, cfg.baseline) if cfg.baseline else [],
        "systems": [s.to_json() for s in systems],
        "definitions": {m.name: m.definition for m in metrics.METRICS if m.name in used},
        "reproduce": {
            "command": command,
            "models": {s.name: s.model_info for s in systems},
            "indexes": {name: _index_info(index) for name, index in indexes.items()},
            "seeds": {
                "generation": cfg.generation.seed,
                "questions": cfg.questions.seed,
                "bootstrap": cfg.bootstrap.seed,
                "holdout": cfg.unanswerable.seed,
            },
            "generation": {
                k: v
                for k, v in config.to_dict(cfg.generation).items()
                if k not in ("model", "api_key_env")
            },
            "runtime": config.to_dict(cfg.runtime),
            "versions": versions(),
        },
        "config": config.to_dict(cfg),
        "notes": notes,
    }


def summary_table(systems: list[SystemResult]) -> str:
    """A plain-text table of the headline metrics (%), one row per system; metrics nobody has are
    left out."""
    cols = sorted(
        (m for m in metrics.METRICS if m.headline and any(m.name in s.metrics for s in systems)),
        key=lambda m: m.headline_at,
    )
    width = max(len(s.name) for s in systems) + 2
    lines = [
        "  " + "system".ljust(width) + "".join(m.headline.rjust(len(m.headline) + 3) for m in cols)
    ]
    for s in systems:
        cells = [cell(s.metrics.get(m.name), m)[0].rjust(len(m.headline) + 3) for m in cols]
        lines.append("  " + s.name.ljust(width) + "".join(cells))
    return "\n".join(lines)
