"""`raftkit build-dataset DOCS`: questions -> grounded answers -> RAFT examples, resumable.

The expensive part (generation, raftkit/raft/batches.py) runs in batches of `checkpoint_every`
chunks (or QA lines); each batch is written to OUT/.work/batch-NNNNN.json atomically before the next
starts. A rerun with the same config and inputs skips finished batches; assembly then runs over all
batches from scratch, seeded per example, so an interrupted and resumed build equals an
uninterrupted one.

OUT is locked while a build runs. `--overwrite` builds beside OUT (in `.OUT.overwrite`, resumable
the same way) and swaps the new dataset in only when it is complete: an interrupted rebuild loses
nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from raftkit import __version__, config, files, outputs
from raftkit.errors import RaftkitError
from raftkit.provenance import now
from raftkit.raft.assemble import DistractorPicker, assemble, check_enough_chunks, split_documents
from raftkit.raft.batches import Batch, LazyGenerator, qa_batch, question_batch, span_batch
from raftkit.raft.config import RaftBuildConfig
from raftkit.raft.formats import write_outputs
from raftkit.raft.records import Record, Status
from raftkit.retrieval.loaders import Document, load_documents
from raftkit.ui import progress, say

WORK, PLAN, MANIFEST = ".work", "plan.json", "manifest.json"


@dataclass
class BuildResult:
    out: Path
    dataset: object  # datasets.DatasetDict with splits train and eval
    summary: dict  # counts and shares, as in manifest.json


# ----------------------------------------------------------------------------- inputs
def read_qa(path: str | Path) -> list[dict]:
    """The lines of a QA .jsonl (question, answer?, choices?, doc_ids); raises RaftkitError on bad
    input."""
    path = Path(path)
    if not path.is_file():
        raise RaftkitError(f"QA file not found: {path}")
    lines = files.scan_jsonl(path)
    if lines.bad:
        n, why = lines.bad[0]
        raise RaftkitError(f"{path}: line {n} is {why}")
    rows, seen = [], set()
    for n, row in lines.rows:
        if not str(row.get("question") or "").strip():
            raise RaftkitError(f"{path}: line {n} has no question")
        if not isinstance(row.get("doc_ids") or [], list):
            raise RaftkitError(f"{path}: line {n}: doc_ids must be a list of document ids")
        row["id"] = str(row.get("id") or f"qa-{n}")
        if row["id"] in seen:
            raise RaftkitError(f"{path}: line {n} repeats id '{row['id']}'")
        seen.add(row["id"])
        rows.append(row)
    if not rows:
        raise RaftkitError(f"{path}: no QA lines")
    return rows


def default_name(docs: str | Path) -> str:
    """The index / output name of a docs path: the folder's name, or a file's stem."""
    p = Path(docs).resolve()
    return p.stem if p.is_file() else p.name


def _fingerprint(
    cfg: RaftBuildConfig, documents: list[Document], qa_rows: list[dict] | None
) -> str:
    settings = config.to_dict(cfg)
    settings.pop("index_name", None)  # where the index lives does not change the examples
    # the evidence gate is calibrated after the examples, from them: changing it regenerates nothing
    settings.pop("gate", None)
    settings["retrieval"].pop("min_score", None)
    blob = json.dumps(
        {"cfg": settings, "docs": sorted((d.id, d.hash) for d in documents), "qa": qa_rows},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _plan(folder: Path) -> str | None:
    try:
        return json.loads((folder / WORK / PLAN).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError):
        return None


def workspace(out: Path, fingerprint: str, overwrite: bool) -> AbstractContextManager[Path]:
    """A context yielding the folder to build OUT in (see outputs.writing()); entering it raises
    RaftkitError before anything is written.

    OUT itself when it is new, empty or an unfinished build of the same inputs; with `--overwrite`,
    the staging folder beside it, kept when an interrupted overwrite of the same inputs left it. A
    folder that is not a build-dataset output is never touched.
    """

    def check_existing(out: Path) -> None:
        if (out / MANIFEST).is_file():
            raise RaftkitError(f"{out} already holds a dataset; use --overwrite to rebuild it")
        if _plan(out) != fingerprint:
            raise RaftkitError(
                f"{out} holds an unfinished build with other settings or inputs; "
                f"rerun it with those, or use --overwrite to start over"
            )

    return outputs.writing(
        out,
        "dataset",
        "dataset",
        overwrite,
        resume_overwrite=lambda stage: _plan(stage) == fingerprint,
        check_existing=check_existing,
    )


# ----------------------------------------------------------------------------- the stage
def build_dataset(
    cfg: RaftBuildConfig,
    docs: str | Path,
    out: str | Path,
    qa: str | Path | None = None,
    overwrite: bool = False,
    generator=None,
    index=None,
) -> BuildResult:
    """Build a RAFT dataset of DOCS into OUT; returns it (a DatasetDict with splits train and eval)
    and its summary.

    `generator` (anything with `.chat(conversations, max_new_tokens=, desc=)`) and `index` (a
    FaissIndex of DOCS) may be injected; otherwise they come from `cfg`. Raises RaftkitError for bad
    input or an OUT that holds something else; resumes an unfinished build of the same settings.
    """
    t0, out = time.perf_counter(), Path(out)
    qa_rows = read_qa(qa) if qa else None
    loaded = load_documents(docs, cfg.retrieval.limits)
    fingerprint = _fingerprint(cfg, loaded.documents, qa_rows)
    with workspace(out, fingerprint, overwrite) as where:
        resume = _plan(where) == fingerprint  # holding this build's plan: an unfinished build of it
        index, index_action = _index(cfg, docs, loaded, index)
        check_enough_chunks(index.chunks, cfg.assembly.num_distractors)
        if not resume:
            shutil.rmtree(where / WORK, ignore_errors=True)
            files.write_json(where / WORK / PLAN, {"fingerprint": fingerprint, "created": now()})
            outputs.mark(where, "dataset")
        splits = split_documents(
            sorted({c.doc_id for c in index.chunks}), cfg.assembly.eval_fraction, cfg.assembly.seed
        )
        picker = DistractorPicker(index.chunks, index.vectors, splits, cfg.assembly)
        gen = LazyGenerator(cfg, generator)
        batches = _run_batches(cfg, where, qa_rows, index, picker, gen)
        records = [r for b in batches for r in b.records]
        kept = [r for r in records if r.usable]
        if not kept:
            raise RaftkitError(
                f"no usable examples: {_reasons(records) or 'nothing to build from'}"
            )
        examples = assemble(kept, picker, cfg.assembly)
        dataset = write_outputs(examples, where)
        summary = _summary(
            records, batches, examples, picker, len(index.chunks), time.perf_counter() - t0
        )
        summary["evidence_gate"] = _gate(cfg, kept, index, splits)
        config.save_resolved(cfg, where)
        inputs = {"docs": str(docs), "qa": str(qa) if qa else None, "qa_lines": len(qa_rows or [])}
        _write_manifest(
            where, cfg, fingerprint, inputs, loaded, (index, index_action), gen, summary, splits
        )
    return BuildResult(out, dataset, summary)


def _write_manifest(
    where: Path, cfg, fingerprint, inputs, loaded, index_and_action, gen, summary, splits
):
    """OUT/manifest.json: inputs, index, models, settings, counts and eval documents."""
    index, action = index_and_action
    files.write_json(
        where / MANIFEST,
        {
            "raftkit_version": __version__,
            "created": now(),
            "fingerprint": fingerprint,
            "inputs": {
                **inputs,
                "documents": len(loaded.documents),
                "skipped_files": loaded.skipped,
            },
            "index": {"name": index.name, "path": str(index.path), "action": action},
            "models": {
                "generator": cfg.generation.model if gen.gen is not None else None,
                "backend": cfg.generation.backend,
                "embedder": cfg.retrieval.embedding.model,
            },
            "settings": config.to_dict(cfg),
            "summary": summary,
            "splits": {"eval_documents": sorted(d for d, s in splits.items() if s == "eval")},
        },
    )


def _index(cfg: RaftBuildConfig, docs, loaded, index):
    """(the FaissIndex of DOCS, what was done to get it); an injected index is used as it is."""
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.retrieval.indexing import ensure_index

    if index is not None:
        action = "given"
    else:
        rcfg = RaftkitConfig(
            retrieval=cfg.retrieval, generation=cfg.generation, runtime=cfg.runtime
        )
        index, action = ensure_index(
            docs, cfg.index_name or default_name(docs), rcfg, loaded.documents
        )
    if action != "built":  # building the index already reported them
        for path, reason in loaded.skipped:
            say(f"skipped {path}: {reason}")
    return index, action


def _run_batches(cfg: RaftBuildConfig, where: Path, qa_rows, index, picker, gen) -> list[Batch]:
    """Every checkpoint batch, generating those not on disk yet; returns all of them in order."""
    chunks_by_id = {c.id: c for c in index.chunks}
    units = qa_rows if qa_rows is not None else index.chunks[: cfg.questions.max_chunks or None]
    every = cfg.checkpoint_every
    parts = [units[i : i + every] for i in range(0, len(units), every)]
    paths = [where / WORK / f"batch-{n:05d}.json" for n in range(len(parts))]
    done = sum(p.is_file() for p in paths)
    if done:
        say(f"resuming {where}: {done} of {len(parts)} batches already done")
    step = qa_batch if qa_rows is not None else question_batch
    if qa_rows is None and cfg.questions.source == "spans":
        from functools import partial

        from raftkit.raft.spans import SpanPool

        step = partial(span_batch, pool=SpanPool(c.text for c in index.chunks))
    todo = [n for n in range(len(parts)) if not paths[n].is_file()]
    what = "QA lines" if qa_rows is not None else "chunks"
    for n in progress(
        todo, total=len(parts), initial=done, desc=f"batches of {every} {what}", unit="batch"
    ):
        files.write_json(paths[n], step(cfg, gen, index, parts[n], picker, chunks_by_id).to_json())
    return [Batch.from_json(json.loads(p.read_text(encoding="utf-8"))) for p in paths]


def _gate(cfg: RaftBuildConfig, kept: list[Record], index, splits: dict) -> dict | None:
    """The evidence gate calibrated on the build's train-split questions (None when not wanted or
    too few): the eval questions stay unseen by it, as by training."""
    from raftkit.retrieval.gate import calibrate

    if cfg.assembly.absent_target != "abstain" or not cfg.gate.over_refusal:
        return None
    # a span question copies its sentence's words, so its retrieval score runs far above a user's
    # question's: a gate fitted on span questions refuses most real answerable ones (measured in
    # benchmarks/RESULTS.md); only questions a person or the generator wrote calibrate it
    pairs = [
        (r.question, r.doc_id)
        for r in kept
        if r.doc_id and r.source != "spans" and splits.get(r.doc_id) == "train"
    ]
    return calibrate(index, pairs, cfg.gate.over_refusal) if pairs else None


def _reasons(records: list[Record]) -> str:
    counts: dict[str, int] = {}
    for r in records:
        if r.reason:
            counts[r.reason] = counts.get(r.reason, 0) + 1
    return ", ".join(
        f"{n} {why}" for why, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _summary(
    records: list[Record], batches: list[Batch], examples, picker, n_chunks: int, wall_s: float
) -> dict:
    count = {s: sum(r.status is s for r in records) for s in Status}
    answered = count[Status.VERIFIED] + count[Status.REPAIRED] + count[Status.DROPPED]
    stats: dict[str, int] = {}
    for b in batches:
        for k, v in b.stats.items():
            stats[k] = stats.get(k, 0) + v
    every = [e for s in examples.values() for e in s]
    share = lambda n: round(n / answered, 4) if answered else 0.0  # noqa: E731
    return {
        "chunks": n_chunks,
        **stats,
        "questions": answered,
        "examples": {s: len(v) for s, v in examples.items()},
        "quote_verified_share": share(count[Status.VERIFIED]),
        "quote_repaired_share": share(count[Status.REPAIRED]),
        "dropped_share": share(count[Status.DROPPED]),
        "skipped": count[Status.SKIPPED],
        "drop_and_skip_reasons": _reasons(records),
        "oracle_share": round(sum(e.oracle_present for e in every) / len(every), 4)
        if every
        else 0.0,
        "distractor_split_fallbacks": picker.fallbacks,
        "wall_s": round(wall_s, 2),
    }


def format_summary(result: BuildResult) -> str:
    """The lines the CLI prints at the end of a build."""
    s = result.summary
    lines = [
        f"wrote {result.out}: {s['examples']['train']} train + {s['examples']['eval']} eval "
        f"examples in {s['wall_s']:.1f}s",
        f"  chunks {s['chunks']}, questions {s['questions']}"
        + (f", QA lines skipped {s['skipped']}" if s["skipped"] else ""),
        f"  quotes verified {s['quote_verified_share']:.1%}, repaired "
        f"{s['quote_repaired_share']:.1%}, dropped {s['dropped_share']:.1%}; oracle share "
        f"{s['oracle_share']:.2f}",
    ]
    if s["drop_and_skip_reasons"]:
        lines.append(f"  not used: {s['drop_and_skip_reasons']}")
    if s.get("evidence_gate") is None and s.get("span_questions"):
        lines.append(
            "  evidence gate: not calibrated: span questions copy their sentence's words, so their "
            "retrieval scores say nothing of a user's question's (calibrate it with --qa questions)"
        )
    if gate := s.get("evidence_gate"):
        lines.append(
            f"  evidence gate: abstain below score {gate['min_score']:.3f} (on these questions: "
            f"{gate['answerable_refused']:.0%} of answerable refused, "
            f"{gate['absent_answered']:.0%} of evidence-absent answered, AUC {gate['auc']:.2f})"
        )
    return "\n".join(lines)
