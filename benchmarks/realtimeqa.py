"""RealTimeQA freshness: fine-tune on v1 news, update the index to v2, score four systems.

    .venv/bin/python benchmarks/realtimeqa.py [--quick] [--render]

The fine-tuned model learns corpus v1 (RAFT data built from questions with `period == v1`); the RAG
index is built on corpus_v1 and brought to corpus_v2 with `raftkit index update`. Every system then
answers three groups of multiple-choice questions: v1 questions it was trained on, v1 questions held
out from training, and v2 questions (facts that appeared after training). Accuracy is the
log-likelihood choice. Writes benchmarks/data/realtimeqa[-quick].json and its section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import random

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
# the full run ~45 min on 2 CPU cores, quick under 10
SIZES = {True: (12, 60, 20), False: (60, 240, 140)}


def questions(args, work):
    """(training rows, evaluation rows with their group): v1 split by document, v2 sampled."""
    per_group, train_n, _ = SIZES[args.quick]
    qa = p.read_jsonl(p.SHARED / "realtimeqa" / "qa.jsonl")
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


def measure(args) -> dict:
    work = p.workdir(p.section("realtimeqa")(args))
    train, eval_rows = questions(args, work)
    sft_steps = SIZES[args.quick][2]
    idx, steps = str(work / "indexes"), p.Steps()
    v1, v2 = (
        p.SHARED / "realtimeqa" / "corpus_v1.jsonl",
        p.SHARED / "realtimeqa" / "corpus_v2.jsonl",
    )
    steps.run(
        "index corpus v1",
        "index",
        "build",
        str(v1),
        "--name",
        "rtqa",
        "--indexes-dir",
        idx,
        *p.CHUNKING,
    )
    # P=0.5 and lr 1e-3 as in `make demo`: half the RAFT rows lack the oracle,
    # so the answer has to come from memory.
    p.build_raft(
        steps,
        v1,
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
        sft_steps,
        args.seed,
        "--set",
        f"data.mix=[{closed_book}]",
        lr=LR,
    )
    steps.run(
        "update the index to corpus v2",
        "index",
        "update",
        str(v2),
        "--name",
        "rtqa",
        "--indexes-dir",
        idx,
    )
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
    answered = p.per_question(work / "report")
    group_of = {r["id"]: r["group"] for r in eval_rows}
    evidence = {r["id"]: r["doc_ids"] for r in eval_rows}
    found = {
        g: [
            any(f"{d}#" in r["retrieved"] for d in evidence[r["qid"]])
            for r in answered
            if r["system"] == "base+rag" and group_of[r["qid"]] == g
        ]
        for g in GROUPS
    }
    acc = p.accuracy_by(answered, group_of)
    return {
        "quick": args.quick,
        "model": args.model,
        "train": len(train),
        "sft_steps": sft_steps,
        "accuracy": {f"{s}|{g}": acc.get((s, g)) for s in SYSTEMS for g in GROUPS},
        "retrieved": {g: sum(v) / max(1, len(v)) for g, v in found.items()},
        "steps": steps.records(),
    }


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
            "Steps (each is a raftkit command; rerun them to reproduce):",
            p.steps_table(d["steps"]),
        ]
    )


if __name__ == "__main__":
    bench_main("realtimeqa", __doc__, measure, render, p.add_args, section=p.section("realtimeqa"))
