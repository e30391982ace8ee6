"""RealTimeQA freshness: fine-tune on v1 news, update the index to v2, score four systems.

    .venv/bin/python benchmarks/realtimeqa.py [--quick] [--render]

The fine-tuned model learns corpus v1 (RAFT data built from questions with `period == v1`); the RAG
index is built on corpus_v1 and brought to corpus_v2 with `raftkit index update`. Every system then
answers three groups of multiple-choice questions: v1 questions it was trained on, v1 questions held
out from training, and v2 questions (facts that appeared after training). Accuracy is the
log-likelihood choice. The same four systems then answer freshness probes that `raftkit probes`
writes from what the update changed, with no hand labels, so the two measures can be set side by
side. Writes benchmarks/data/realtimeqa[-quick].json and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pipeline as p
from results import bench_main, describe, table

GROUPS = ("v1 trained", "v1 held out", "v2 (new)")
SYSTEMS = ("base", "base+rag", "fine-tuned", "fine-tuned+rag")
ORACLE_P, LR, CLOSED_BOOK_REPEATS = (
    0.5,
    "1e-3",
    3,
)  # the demo's P and lr; see measure() for the repeats
# (questions per group, training questions, SFT steps):
# the full run ~45 min on 2 CPU cores, quick 10-12 (AVX512 / AVX2-only CPUs)
SIZES = {True: (12, 60, 20), False: (60, 240, 140)}
CORPUS = p.SHARED / "realtimeqa"
# one probe per document spreads the probes compared over as many added documents as they ask
PROBES_PER_DOC = 1
PROBE_STATUSES = ("changed", "added", "unanswerable")
PROBE_METRICS = ("accuracy", "accuracy_added", "accuracy_changed", "stale_rate")


def questions(args, work):
    """(training rows, evaluation rows with their group): v1 split by document, v2 sampled."""
    per_group, train_n, _ = SIZES[args.quick]
    qa = p.read_jsonl(CORPUS / "qa.jsonl")
    v1, v2 = [r for r in qa if r.get("period") == "v1"], [r for r in qa if r.get("period") == "v2"]
    train, held = p.split_by_document(v1, per_group, args.seed)
    rng, train = random.Random(args.seed), train[:train_n]
    eval_rows = (
        [dict(r, group=GROUPS[0]) for r in rng.sample(train, min(per_group, len(train)))]
        + [dict(r, group=GROUPS[1]) for r in held[:per_group]]
        + [dict(r, group=GROUPS[2]) for r in rng.sample(v2, min(per_group, len(v2)))]
    )
    p.write_jsonl(work / "train_v1_qa.jsonl", train)
    p.write_jsonl(work / "eval_qa.jsonl", eval_rows)
    return train, eval_rows


def fine_tune(steps: p.Steps, args, work: Path, idx: str) -> str:
    """RAFT data from the v1 training questions, then SFT-LoRA on it; returns the run folder."""
    # P=0.5 and lr 1e-3 as in `make demo`: half the RAFT rows lack the oracle,
    # so the answer has to come from memory.
    p.build_raft(
        steps,
        CORPUS / "corpus_v1.jsonl",
        work / "train_v1_qa.jsonl",
        work / "raft",
        idx,
        "rtqa",
        args.seed,
        "--set",
        f"assembly.oracle_p={ORACLE_P}",
        "--set",
        "assembly.absent_target=memorize",
    )
    # RAFT rows plus the same questions closed-book (the build's dsf_train.jsonl)
    # CLOSED_BOOK_REPEATS times: the closed-book rows are ~6% of the tokens, and seen once the
    # model barely learned the v1 facts.
    closed_book = ",".join([str(work / "raft" / "dsf_train.jsonl")] * CLOSED_BOOK_REPEATS)
    ft = str(work / "runs" / "raft")
    p.train_sft(
        steps,
        "SFT-LoRA on v1 (RAFT + closed-book rows)",
        work / "raft",
        ft,
        args.model,
        SIZES[args.quick][2],
        args.seed,
        "--set",
        f"data.mix=[{closed_book}]",
        lr=LR,
    )
    return ft


def write_probes(steps: p.Steps, args, work: Path, idx: str) -> tuple[dict, list[dict]]:
    """`raftkit probes` on the v1 -> v2 update: ({update: documents by status, counts: probes by
    status, seconds}, the probe rows)."""
    out = work / "probes.jsonl"
    seconds = steps.run(
        "freshness probes from the v1 -> v2 update",
        "probes",
        "rtqa",
        "--out",
        str(out),
        "--indexes-dir",
        idx,
        "--set",
        f"probes.max_per_doc={PROBES_PER_DOC}",
        "--set",
        f"probes.seed={args.seed}",
        "--overwrite",
    )
    from raftkit.retrieval import history

    index = Path(idx) / "rtqa"
    update = history.counts(history.read(index)[-1])
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    update["unchanged"] = len(manifest["documents"]) - update["added"] - update["changed"]
    rows = p.read_jsonl(out)
    counts = {s: sum(r["status"] == s for r in rows) for s in PROBE_STATUSES}
    return {"update": update, "counts": counts, "per_doc": PROBES_PER_DOC, "seconds": seconds}, rows


def compare_probes(steps: p.Steps, args, work: Path, rows: list[dict]) -> dict:
    """The four systems on a seeded sample of the probes, through the hand-labelled groups'
    compare.yaml: {asked, metrics: {system: {metric: stat}}, retrieved: {status: share}}."""
    out, asked = work / "report-probes", SIZES[args.quick][0]  # as many as a hand-labelled group
    # compare.yaml turns freshness off (the groups above come from `period`); the probes' status
    # is what the added- and changed-fact metrics read
    steps.run(
        "compare the four systems on the probes",
        "compare",
        "--config",
        str(work / "compare.yaml"),
        "--out",
        str(out),
        "--set",
        f"questions.path={work / 'probes.jsonl'}",
        "--set",
        f"questions.max_questions={asked}",
        "--set",
        "freshness.enable=true",
        "--overwrite",
    )
    got = p.metrics(out)
    status_of = {r["id"]: r["status"] for r in rows}
    evidence = {r["id"]: r["doc_ids"] for r in rows}
    return {
        "asked": asked,
        "metrics": {s: {m: got.get(s, {}).get(m) for m in PROBE_METRICS} for s in SYSTEMS},
        "retrieved": retrieved(p.per_question(out), status_of, evidence, PROBE_STATUSES),
    }


def retrieved(answered, group_of: dict, evidence: dict, groups) -> dict[str, float]:
    """Per group that base+rag was asked: the share of its questions whose evidence document is
    among its top-3 chunks."""
    found = {
        g: [
            any(f"{d}#" in r["retrieved"] for d in evidence[r["qid"]])
            for r in answered
            if r["system"] == "base+rag" and group_of.get(r["qid"]) == g
        ]
        for g in groups
    }
    return {g: sum(v) / len(v) for g, v in found.items() if v}


def measure(args) -> dict:
    work = p.workdir(p.section("realtimeqa")(args))
    train, eval_rows = questions(args, work)
    idx, steps = str(work / "indexes"), p.Steps()
    steps.run(
        "index corpus v1",
        "index",
        "build",
        str(CORPUS / "corpus_v1.jsonl"),
        "--name",
        "rtqa",
        "--indexes-dir",
        idx,
        *p.CHUNKING,
    )
    ft = fine_tune(steps, args, work, idx)
    steps.run(
        "update the index to corpus v2",
        "index",
        "update",
        str(CORPUS / "corpus_v2.jsonl"),
        "--name",
        "rtqa",
        "--indexes-dir",
        idx,
    )
    probes, probe_rows = write_probes(steps, args, work, idx)
    rag = {"mode": "rag", "index": "rtqa", "top_k": 3}
    cfg = p.compare_config(
        [
            {"name": "base", "model": args.model, "mode": "closed"},
            {"name": "base+rag", "model": args.model, **rag},
            {"name": "fine-tuned", "model": ft, "mode": "closed"},
            {"name": "fine-tuned+rag", "model": ft, **rag},
        ],
        work / "eval_qa.jsonl",
        idx,
        args.model,
        args.seed,
    )
    p.compare_step(steps, work, cfg, "compare the four systems")
    probes.update(compare_probes(steps, args, work, probe_rows))
    answered = p.per_question(work / "report")
    group_of = {r["id"]: r["group"] for r in eval_rows}
    evidence = {r["id"]: r["doc_ids"] for r in eval_rows}
    acc = p.accuracy_by(answered, group_of)
    return {
        "quick": args.quick,
        "model": args.model,
        "train": len(train),
        "sft_steps": SIZES[args.quick][2],
        "accuracy": {f"{s}|{g}": acc.get((s, g)) for s in SYSTEMS for g in GROUPS},
        "retrieved": retrieved(answered, group_of, evidence, GROUPS),
        "probes": probes,
        "steps": steps.records(),
    }


def story(d: dict) -> str:
    """Whether the probes and the hand-labelled v2 questions order the fine-tuned model
    closed-book against RAG over the updated index the same way, from the saved numbers."""
    rag, m = ("base+rag", "fine-tuned+rag"), d["probes"]["metrics"]
    hand = {s: (d["accuracy"].get(f"{s}|{GROUPS[2]}") or [None])[0] for s in SYSTEMS}
    probe = {s: (m[s].get("accuracy") or {}).get("value") for s in SYSTEMS}
    if any(v[s] is None for v in (hand, probe) for s in (*rag, "fine-tuned")):
        return "Probes against hand labels: not compared (a system has no accuracy on one side)."
    gap = {
        k: [round(100 * (v[r] - v["fine-tuned"]), 1) for r in rag]
        for k, v in (("hand", hand), ("probes", probe))
    }

    def sign(x):
        return (x > 0) - (x < 0)

    differ = [r for r, h, q in zip(rag, gap["hand"], gap["probes"]) if sign(h) != sign(q)]
    verdict = (
        "the probes tell the same story as the hand-labelled v2 questions"
        if not differ
        else "the probes and the hand-labelled v2 questions disagree on " + " and ".join(differ)
    )
    noise = [r for r in rag if overlap(m[r].get("accuracy"), m["fine-tuned"].get("accuracy"))]
    return (
        "**Reading it** (computed from the numbers above): RAG over the updated index minus the "
        "fine-tuned model closed-book, in points, hand-labelled v2 / probes: "
        + ", ".join(f"{r} {h:+.1f} / {q:+.1f}" for r, h, q in zip(rag, gap["hand"], gap["probes"]))
        + f": {verdict}."
        + (
            f" On the probes the 95% intervals of fine-tuned and {' and '.join(noise)} overlap: "
            "at this n that gap is within noise."
            if noise
            else ""
        )
    )


def overlap(a: dict | None, b: dict | None) -> bool:
    """Whether two results.json stats have overlapping intervals (False without intervals)."""
    if not (a and b and a.get("ci") and b.get("ci")):
        return False
    return a["ci"][0] <= b["ci"][1] and b["ci"][0] <= a["ci"][1]


def probe_section(d: dict, hand_cell) -> list[str]:
    """The probe columns beside the hand-labelled v2 one, what this update cannot measure, and
    whether the two agree; a note instead for data saved before the probes."""
    pr = d.get("probes")
    if not pr:
        return [
            "Freshness probes: not in this measurement (saved before the script ran `raftkit "
            "probes`); rerun the script for the probe columns."
        ]
    u, c, m = pr["update"], pr["counts"], pr["metrics"]
    cols = ["accuracy_added"] + (["accuracy_changed", "stale_rate"] if c["changed"] else [])
    rows = []
    for s in SYSTEMS:
        acc = m[s].get("accuracy") or {}
        seen = f"{100 * acc['value']:.1f} (n={acc['n']})" if acc.get("value") is not None else "-"
        rows.append([s, hand_cell(s, GROUPS[2]), seen, *[p.cell(m[s].get(k)) for k in cols]])
    headers = ["system", "v2 (new), hand-labelled", "probes: accuracy", "probes: added facts"]
    headers += ["probes: changed facts", "probes: stale"] if c["changed"] else []
    missing = []
    if not c["changed"]:
        missing.append(
            f"`changed` probe ({u['changed']} documents changed): no changed-fact "
            "accuracy or stale rate"
        )
    if not c["unanswerable"]:
        missing.append(f"`unanswerable` probe ({u['deleted']} deleted): no unanswerable figure")
    note = (
        "This update gives no " + "; and no ".join(missing) + ". Those are not measured here, so "
        "they have no column rather than an empty one."
        if missing
        else ""
    )
    if not c["changed"]:
        note += " Every probe compared is `added`: both probe columns count the same questions."
    return [
        f"Freshness probes, no hand labels: the v1 -> v2 update left {u['unchanged']} documents "
        f"unchanged, added {u['added']}, changed {u['changed']} and deleted {u['deleted']}; "
        "`raftkit probes` wrote "
        + ", ".join(f"{c[s]} {s}" for s in PROBE_STATUSES)
        + f" probes from it (at most {pr['per_doc']} per document) in {pr['seconds']:.1f} s "
        "(the command's wall time). The four systems answered a seeded sample of at most "
        f"{pr['asked']} through the same compare.yaml (which leaves unanswerable questions out). "
        "The facts columns give the bootstrap 95% interval.",
        table(headers, rows),
        note.strip(),
        "Retrieval: share of probes whose evidence document is among base+rag's top-3 chunks: "
        + ", ".join(f"{g} {100 * v:.0f}%" for g, v in pr["retrieved"].items())
        + ".",
        story(d),
    ]


def render(d: dict) -> str:
    def cell(s, g):
        v = d["accuracy"].get(f"{s}|{g}")
        return f"{100 * v[0]:.1f} (n={v[1]})" if v else "-"

    total = sum(s["seconds"] for s in d["steps"])
    return "\n\n".join(
        [
            "## RealTimeQA freshness "
            f"(`benchmarks/realtimeqa.py{' --quick' if d['quick'] else ''}`)",
            f"Machine: {describe(d['machine'])}. Model: `{d['model']}` (135M). Fine-tuned on "
            f"corpus v1 via RAFT data from {d['train']} v1 questions (oracle + 2 distractors, "
            f"P={ORACLE_P}, the answer from memory where the oracle is dropped) mixed with the "
            f"same questions closed-book, {CLOSED_BOOK_REPEATS} times (`data.mix`), SFT-LoRA "
            f"{d['sft_steps']} steps x 4 packed 1024-token rows at lr {LR}; RAG index built on "
            "corpus v1 then `raftkit index update` to corpus v2, top-3. Accuracy % = "
            "log-likelihood choice among 4 options after each system's own reply (chance = 25%). "
            f"Total {total / 60:.1f} min.",
            table(["system", *GROUPS], [[s, *[cell(s, g) for g in GROUPS]] for s in SYSTEMS]),
            "Retrieval: share of questions whose evidence document is among the top-3 chunks "
            "(index after the update): "
            + ", ".join(f"{g} {100 * v:.0f}%" for g, v in d["retrieved"].items())
            + ".",
            *[part for part in probe_section(d, cell) if part],
            *(
                [
                    "Quick mode checks that the whole pipeline runs: at n=12 per cell one question "
                    "is 8 points, so its numbers are not a result; the full run is the measurement."
                ]
                if d["quick"]
                else []
            ),
            "Steps (each is a raftkit command; rerun them to reproduce):",
            p.steps_table(d["steps"]),
        ]
    )


if __name__ == "__main__":
    bench_main("realtimeqa", __doc__, measure, render, p.add_args, section=p.section("realtimeqa"))
