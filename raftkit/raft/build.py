"""`raftkit build-dataset DOCS`: questions -> grounded answers -> RAFT examples, resumable.

The expensive part (generation) runs in batches of `checkpoint_every` chunks (or QA lines); each
batch is written to OUT/.work/batch-NNNNN.json atomically before the next starts. A rerun with the
same config and inputs skips finished batches; assembly then runs over all batches from scratch,
seeded per example, so an interrupted and resumed build equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from raftkit import __version__, atomic, config
from raftkit.errors import RaftkitError
from raftkit.raft import answers as ans
from raftkit.raft import questions as qs
from raftkit.raft.assemble import DistractorPicker, assemble, split_documents
from raftkit.raft.config import RaftBuildConfig
from raftkit.raft.formats import write_outputs
from raftkit.retrieval.loaders import Document, load_documents
from raftkit.ui import progress, say

WORK, PLAN, MANIFEST = ".work", "plan.json", "manifest.json"


# ----------------------------------------------------------------------------- inputs
def read_qa(path: str | Path) -> list[dict]:
    """The lines of a QA .jsonl (question, answer?, choices?, doc_ids); raises RaftkitError on bad input."""
    path = Path(path)
    if not path.is_file():
        raise RaftkitError(f"QA file not found: {path}")
    rows, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise RaftkitError(f"{path}: line {n} is not valid JSON") from None
        if not isinstance(row, dict) or not str(row.get("question") or "").strip():
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


def resolve_index(cfg: RaftBuildConfig, docs: str | Path, documents: list[Document]):
    """Reuse indexes/<name> when it holds exactly `documents`, update it when its source folder
    changed, else build it. Returns (FaissIndex, 'reused' | 'updated' | 'built')."""
    from raftkit.config import RaftkitConfig
    from raftkit.retrieval.index import MANIFEST as IDX_MANIFEST
    from raftkit.retrieval.index import build_index, index_path, load_index, update_index

    name = cfg.index_name or default_name(docs)
    indexes_dir = cfg.retrieval.indexes_dir
    if not (index_path(name, indexes_dir) / IDX_MANIFEST).is_file():
        say(f"building index '{name}' of {docs}")
        return build_index(docs, name, RaftkitConfig(cfg.retrieval, cfg.generation)), "built"
    index = load_index(name, indexes_dir)
    r, ir = cfg.retrieval, index.cfg.retrieval
    if (r.embedding.model, config.to_dict(r.chunking)) != (ir.embedding.model, config.to_dict(ir.chunking)):
        raise RaftkitError(f"index '{name}' at {index.path} was built with another embedder or chunking than "
                           f"this config; set index_name to build a separate one")
    want = {d.id: d.hash for d in documents}
    if {k: v["hash"] for k, v in index.manifest["documents"].items()} == want:
        return index, "reused"
    if Path(index.manifest.get("source", "")).resolve() != Path(docs).resolve():
        raise RaftkitError(f"index '{name}' at {index.path} holds other documents ({index.manifest.get('source')}); "
                           f"set index_name to build one for {docs}")
    say(f"updating index '{name}': the documents changed")
    return update_index(docs, name, indexes_dir)[0], "updated"


def _fingerprint(cfg: RaftBuildConfig, documents: list[Document], qa_rows: list[dict] | None) -> str:
    settings = config.to_dict(cfg)
    settings.pop("index_name", None)  # where the index lives does not change the examples
    blob = json.dumps({"cfg": settings, "docs": sorted((d.id, d.hash) for d in documents), "qa": qa_rows},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_out(out: Path, fingerprint: str, overwrite: bool) -> str:
    """'fresh' | 'resume' | 'overwrite'; raises RaftkitError (before anything is written) otherwise."""
    plan = out / WORK / PLAN
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "fresh"
    ours = (out / MANIFEST).is_file() or plan.is_file()
    if not out.is_dir() or not ours:
        raise RaftkitError(f"{out} exists and is not a build-dataset output; choose another --out")
    if overwrite:
        return "overwrite"
    if (out / MANIFEST).is_file():
        raise RaftkitError(f"{out} already holds a dataset; use --overwrite to rebuild it")
    if json.loads(plan.read_text()).get("fingerprint") != fingerprint:
        raise RaftkitError(f"{out} holds an unfinished build with other settings or inputs; "
                           f"rerun it with those, or use --overwrite to start over")
    return "resume"


# ----------------------------------------------------------------------------- batches
class _Lazy:
    """The generator, loaded the first time a batch needs it (a --qa build with answers needs none)."""

    def __init__(self, cfg, generator):
        self.cfg, self.gen = cfg, generator

    def __call__(self):
        if self.gen is None:
            from raftkit.generate import make_generator

            say(f"loading generator {self.cfg.model} ({self.cfg.backend})")
            self.gen = make_generator(self.cfg)
        return self.gen


def _ground(cfg: RaftBuildConfig, gen: _Lazy, items: list[dict], picker: DistractorPicker, chunks_by_id) -> None:
    """Generate and verify the CoT answer of each item (question, oracle_id) in place."""
    a = cfg.answers
    todo = [it for it in items if it.get("cot") is None]
    if not todo:
        return
    convs = [ans.answer_messages(it["question"], chunks_by_id[it["oracle_id"]].text) for it in todo]
    distractors = []
    if a.rejected == "generate":
        distractors = [picker.chunks[picker.pick(it["oracle_id"], it["id"])[0]] for it in todo]
        convs += [ans.answer_messages(it["question"], d.text) for it, d in zip(todo, distractors)]
    replies = gen().chat(convs, max_new_tokens=a.max_new_tokens, desc="answers")
    for n, it in enumerate(todo):
        g = ans.verify(replies[n], it["question"], chunks_by_id[it["oracle_id"]].text, a.on_bad_quote,
                       a.min_overlap, a.max_answer_words)
        it.update(cot=g.cot, answer=g.answer, status=g.status, reason=g.reason)
        if distractors:
            bad = ans.verify(replies[len(todo) + n], it["question"], distractors[n].text, "repair",
                             a.min_overlap, a.max_answer_words)
            it["rejected"] = bad.cot if bad.status != "dropped" else None


def _question_batch(cfg: RaftBuildConfig, gen: _Lazy, index, chunks: list, picker, chunks_by_id) -> dict:
    q = cfg.questions
    replies = gen().chat([qs.question_messages(c.text, q.per_chunk) for c in chunks],
                         max_new_tokens=q.max_new_tokens, desc="questions")
    parsed = [qs.parse_questions(r, limit=2 * q.per_chunk) for r in replies]
    flat = [x for p in parsed for x in p]
    vectors = index.embedder.encode(flat) if flat else None
    items, start, dups = [], 0, 0
    for c, found in zip(chunks, parsed):
        keep = qs.dedup(found, vectors[start:start + len(found)], q.dedup_threshold) if found else []
        start += len(found)
        dups += len(found) - len(keep)
        for j, i in enumerate(keep[:q.per_chunk]):
            items.append({"id": f"{c.id}/q{j}", "question": found[i], "oracle_id": c.id, "doc_id": c.doc_id,
                          "cot": None, "source": "generated"})
    _ground(cfg, gen, items, picker, chunks_by_id)
    return {"records": items, "stats": {"chunks_asked": len(chunks), "questions_parsed": len(flat),
                                        "questions_duplicate": dups,
                                        "chunks_without_questions": sum(not p for p in parsed)}}


def _qa_batch(cfg: RaftBuildConfig, gen: _Lazy, index, rows: list[dict], picker, chunks_by_id) -> dict:
    import numpy as np

    from raftkit.prompts import normalize_ws

    qa = cfg.qa
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(index.chunks):
        by_doc.setdefault(c.doc_id, []).append(i)
    items, todo = [], []
    for row in rows:
        rec = {"id": str(row["id"]), "question": row["question"].strip(), "source": "qa",
               "choices": [str(c) for c in row.get("choices") or []], "cot": None}
        answer = row.get(qa.answer_field)
        docs = [d for d in row.get("doc_ids") or [] if d in by_doc]
        if not row.get("doc_ids") or (qa.answer_field in row and answer is None):
            rec.update(status="skipped", reason="unanswerable (no doc_ids or null answer)")
        elif not docs:
            rec.update(status="skipped", reason="its documents are not in DOCS")
        else:
            cands = [i for d in docs for i in by_doc[d]]
            given = qa.answers == "given" and answer is not None
            if given:
                needle = normalize_ws(str(answer)).lower()
                having = [i for i in cands if needle in normalize_ws(index.chunks[i].text).lower()]
                if having:
                    cands = having
                elif qa.require_answer_in_docs:
                    rec.update(status="skipped", reason="answer not in its documents")
            if rec.get("status") != "skipped":
                rec.update(_cands=cands, _given=str(answer) if given else None, _long=row.get("long_answer") or "")
                todo.append(rec)
        items.append(rec)
    if todo:
        vectors = index.embedder.encode([f"{r['question']} {r['_given'] or ''}".strip() for r in todo])
        for r, v in zip(todo, vectors):
            cands = r.pop("_cands")
            best = cands[int(np.argmax(index.vectors[cands] @ v))]
            oracle = index.chunks[best]
            r.update(oracle_id=oracle.id, doc_id=oracle.doc_id)
            given, long = r.pop("_given"), r.pop("_long")
            if given is not None:
                g = ans.deterministic_cot(r["question"], given, oracle.text, r["id"], reason=str(long))
                r.update(cot=g.cot, answer=g.answer, status=g.status, reason="")
        _ground(cfg, gen, [r for r in todo if r["cot"] is None], picker, chunks_by_id)
    return {"records": items, "stats": {"qa_lines": len(rows)}}


# ----------------------------------------------------------------------------- the stage
def build_dataset(cfg: RaftBuildConfig, docs: str | Path, out: str | Path, qa: str | Path | None = None,
                  overwrite: bool = False, generator=None, index=None):
    """Build a RAFT dataset of DOCS into OUT and return it as a DatasetDict (splits train, eval).

    `generator` (anything with `.chat(conversations, max_new_tokens=, desc=)`) and `index` (a
    FaissIndex of DOCS) may be injected; otherwise they come from `cfg`. Raises RaftkitError for bad
    input or an OUT that holds something else; resumes an unfinished build of the same settings.
    """
    t0 = time.perf_counter()
    out = Path(out)
    qa_rows = read_qa(qa) if qa else None
    loaded = load_documents(docs)
    fingerprint = _fingerprint(cfg, loaded.documents, qa_rows)
    mode = _check_out(out, fingerprint, overwrite)
    index_action = "given"
    if index is None:
        index, index_action = resolve_index(cfg, docs, loaded.documents)
    if index_action != "built":  # building the index already reported them
        for path, reason in loaded.skipped:
            say(f"skipped {path}: {reason}")
    _check_enough_chunks(index.chunks, cfg.assembly.num_distractors)
    work = out / WORK
    if mode == "overwrite":
        (out / MANIFEST).unlink(missing_ok=True)  # the folder reads as unfinished until the new build ends
        shutil.rmtree(work, ignore_errors=True)
    if mode != "resume":
        atomic.write_json(work / PLAN, {"fingerprint": fingerprint, "created": _now()})

    chunks_by_id = {c.id: c for c in index.chunks}
    splits = split_documents(sorted({c.doc_id for c in index.chunks}), cfg.assembly.eval_fraction, cfg.assembly.seed)
    picker = DistractorPicker(index.chunks, index.vectors, splits, cfg.assembly)
    units = qa_rows if qa_rows is not None else index.chunks[:cfg.questions.max_chunks or None]
    every = cfg.checkpoint_every
    batches = [units[i:i + every] for i in range(0, len(units), every)]
    files = [work / f"batch-{n:05d}.json" for n in range(len(batches))]
    done = sum(f.is_file() for f in files)
    if mode == "resume":
        say(f"resuming {out}: {done} of {len(batches)} batches already done")
    gen = _Lazy(cfg.generation, generator)
    step = _qa_batch if qa_rows is not None else _question_batch
    todo = [n for n in range(len(batches)) if not files[n].is_file()]
    what = "QA lines" if qa_rows is not None else "chunks"
    for n in progress(todo, total=len(batches), initial=done, desc=f"batches of {every} {what}", unit="batch"):
        atomic.write_json(files[n], step(cfg, gen, index, batches[n], picker, chunks_by_id))

    parts = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    records = [r for p in parts for r in p["records"]]
    kept = [r for r in records if r["status"] in ("verified", "repaired")]
    if not kept:
        raise RaftkitError(f"no usable examples: {_reasons(records) or 'nothing to build from'}")
    examples = assemble(kept, picker, cfg.assembly)
    dd = write_outputs(examples, out)
    summary = _summary(records, parts, examples, picker, len(index.chunks), time.perf_counter() - t0)
    config.save_resolved(cfg, out)
    atomic.write_json(out / MANIFEST, {
        "raftkit_version": __version__, "created": _now(), "fingerprint": fingerprint,
        "inputs": {"docs": str(docs), "documents": len(loaded.documents), "skipped_files": loaded.skipped,
                   "qa": str(qa) if qa else None, "qa_lines": len(qa_rows) if qa_rows else 0},
        "index": {"name": index.name, "path": str(index.path), "action": index_action},
        "models": {"generator": cfg.generation.model if gen.gen is not None or generator else None,
                   "backend": cfg.generation.backend, "embedder": cfg.retrieval.embedding.model},
        "settings": config.to_dict(cfg), "summary": summary,
        "splits": {"eval_documents": sorted(d for d, s in splits.items() if s == "eval")},
    })
    return dd


def _check_enough_chunks(chunks: list, k: int) -> None:
    """Fail before any generation when some document has fewer than k+1 chunks outside it."""
    per_doc: dict[str, int] = {}
    for c in chunks:
        per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
    doc, n = max(per_doc.items(), key=lambda kv: (kv[1], kv[0]))
    if len(chunks) - n < k + 1:
        raise RaftkitError(f"{k} distractors (+1 to replace a dropped oracle) need {k + 1} chunks outside "
                           f"'{doc}', the corpus has {len(chunks) - n}; lower assembly.num_distractors "
                           f"or add documents")


def _reasons(records: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in records:
        if r.get("reason"):
            counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return ", ".join(f"{n} {why}" for why, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _summary(records, parts, examples, picker, n_chunks, wall_s) -> dict:
    answered = [r for r in records if r["status"] in ("verified", "repaired", "dropped")]
    count = {s: sum(r["status"] == s for r in records) for s in ("verified", "repaired", "dropped", "skipped")}
    stats: dict[str, int] = {}
    for p in parts:
        for k, v in p["stats"].items():
            stats[k] = stats.get(k, 0) + v
    every = [e for s in examples.values() for e in s]
    share = lambda n: round(n / len(answered), 4) if answered else 0.0  # noqa: E731
    return {
        "chunks": n_chunks, **stats, "questions": len(answered),
        "examples": {s: len(v) for s, v in examples.items()},
        "quote_verified_share": share(count["verified"]), "quote_repaired_share": share(count["repaired"]),
        "dropped_share": share(count["dropped"]), "skipped": count["skipped"],
        "drop_and_skip_reasons": _reasons(records),
        "oracle_share": round(sum(e["oracle_present"] for e in every) / len(every), 4) if every else 0.0,
        "distractor_split_fallbacks": picker.fallbacks, "wall_s": round(wall_s, 2),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def format_summary(out: Path, s: dict) -> str:
    """The lines the CLI prints at the end of a build."""
    lines = [f"wrote {out}: {s['examples']['train']} train + {s['examples']['eval']} eval examples "
             f"in {s['wall_s']:.1f}s",
             f"  chunks {s['chunks']}, questions {s['questions']}"
             + (f", QA lines skipped {s['skipped']}" if s["skipped"] else ""),
             f"  quotes verified {s['quote_verified_share']:.1%}, repaired {s['quote_repaired_share']:.1%}, "
             f"dropped {s['dropped_share']:.1%}; oracle share {s['oracle_share']:.2f}"]
    if s["drop_and_skip_reasons"]:
        lines.append(f"  not used: {s['drop_and_skip_reasons']}")
    return "\n".join(lines)


def command(args) -> None:
    """`raftkit build-dataset DOCS [--config] [--out] [--qa] [--set] [--overwrite]`."""
    cfg = config.load(RaftBuildConfig, args.config, args.set)
    out = Path(args.out or Path("datasets") / default_name(args.docs))
    build_dataset(cfg, args.docs, out, qa=args.qa, overwrite=args.overwrite)
    print(format_summary(out, json.loads((out / MANIFEST).read_text(encoding="utf-8"))["summary"]))
