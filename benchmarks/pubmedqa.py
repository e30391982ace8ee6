"""PubMedQA, the RAFT paper's domain setting: base+RAG vs DSF+RAG vs RAFT+RAG on held-out questions.

    .venv/bin/python benchmarks/pubmedqa.py [--quick] [--render]

The 500 PQA-L items of ../shared/benchmarks/pubmedqa are split by document into train and test. RAFT
data is built from the train questions with `--qa` (their expert long answers ground the chain of
thought; distractors come from the whole corpus), DSF is SFT on the same questions without
documents, and all systems answer the test questions over an index of the whole corpus. Accuracy is
the log-likelihood choice among yes/no/maybe. Writes benchmarks/data/pubmedqa[-quick].json and its
section.
"""

from __future__ import annotations

import pipeline as p
from results import bench_main, describe, table

PAPER = {
    "LLaMA2-7B + RAG": 58.8,
    "DSF + RAG": 71.6,
    "RAFT (LLaMA2-7B)": 73.3,
    "GPT-3.5 + RAG": 71.6,
}
SYSTEMS = ("base", "base+rag", "dsf+rag", "raft+rag")
# (test questions, train questions, SFT steps): the full run ~45 min on 2 CPU cores, quick under 10
SIZES = {True: (24, 80, 20), False: (100, 400, 130)}


def measure(args) -> dict:
    work = p.workdir(p.section("pubmedqa")(args))
    test_n, train_n, sft_steps = SIZES[args.quick]
    corpus = p.SHARED / "pubmedqa" / "corpus.jsonl"
    train, test = p.split_by_document(
        p.read_jsonl(p.SHARED / "pubmedqa" / "qa.jsonl"), test_n, args.seed
    )
    train = train[:train_n]
    p.write_jsonl(work / "train_qa.jsonl", train)
    p.write_jsonl(work / "test_qa.jsonl", test)
    idx, steps = str(work / "indexes"), p.Steps()
    steps.run(
        "index the corpus",
        "index",
        "build",
        str(corpus),
        "--name",
        "pubmedqa",
        "--indexes-dir",
        idx,
        *p.CHUNKING,
    )
    p.build_raft(steps, corpus, work / "train_qa.jsonl", work / "raft", idx, "pubmedqa", args.seed)
    p.train_sft(
        steps,
        "SFT-LoRA (RAFT)",
        work / "raft",
        work / "runs" / "raft",
        args.model,
        sft_steps,
        args.seed,
    )
    # DSF rows are short: unpacked, a step sees the same 4 questions a RAFT step does (packed into
    # 1024-token rows it would see ~20 and repeat the data for many epochs).
    p.train_sft(
        steps,
        "SFT-LoRA (DSF)",
        work / "raft" / "dsf_train.jsonl",
        work / "runs" / "dsf",
        args.model,
        sft_steps,
        args.seed,
        "--set",
        "sft.packing=false",
    )
    rag = {"mode": "rag", "index": "pubmedqa", "top_k": 3}
    cfg = p.compare_config(
        [
            {"name": "base", "model": args.model, "mode": "closed"},
            {"name": "base+rag", "model": args.model, **rag},
            {"name": "dsf+rag", "model": str(work / "runs" / "dsf"), **rag},
            {"name": "raft+rag", "model": str(work / "runs" / "raft"), **rag},
        ],
        work / "test_qa.jsonl",
        idx,
        args.model,
        args.seed,
        max_new_tokens=96,
    )  # quote + conclusion
    p.compare_step(steps, work, cfg, "compare on the test split")
    return {
        "quick": args.quick,
        "model": args.model,
        "seed": args.seed,
        "train": len(train),
        "test": len(test),
        "sft_steps": sft_steps,
        "accuracy": {n: m["accuracy"] for n, m in p.metrics(work / "report").items()},
        "steps": steps.records(),
    }


def render(d: dict) -> str:
    rows = []
    for name in SYSTEMS:
        acc = d["accuracy"][name]
        lo, hi = acc["ci"] or (acc["value"], acc["value"])
        rows.append(
            [name, f"{100 * acc['value']:.1f}", f"[{100 * lo:.1f}, {100 * hi:.1f}]", acc["n"]]
        )
    total = sum(s["seconds"] for s in d["steps"])
    return "\n\n".join(
        [
            f"## PubMedQA (`benchmarks/pubmedqa.py{' --quick' if d['quick'] else ''}`)",
            f"Machine: {describe(d['machine'])}. Model: `{d['model']}` (135M). {d['train']} train "
            f"/ {d['test']} test questions, split by document (seed {d['seed']}); index over all "
            "500 abstracts (192-token chunks); RAFT: oracle + 2 distractors, P=0.8, CoT grounded "
            f"on the expert long answer; SFT-LoRA {d['sft_steps']} steps x 4 (RAFT packed into "
            "1024-token rows; DSF unpacked, so both see the same questions per step); RAG top-3. "
            "Accuracy = log-likelihood choice among yes/no/maybe after each system's own reply, "
            f"bootstrap 95% CI. Total {total / 60:.1f} min.",
            table(["system", "accuracy %", "95% CI", "questions"], rows),
            "RAFT paper, Table 1, PubMedQA (LLaMA2-7B, accuracy %): "
            + ", ".join(f"{k} {v}" for k, v in PAPER.items())
            + (
                ". A 135M model trained for minutes on a CPU is not expected to reach those "
                "numbers; the comparison that matters is between the rows above, which share "
                "model, data and prompts."
            ),
            "Steps (each is a raftkit command; rerun them to reproduce):",
            p.steps_table(d["steps"]),
        ]
    )


if __name__ == "__main__":
    bench_main("pubmedqa", __doc__, measure, render, p.add_args, section=p.section("pubmedqa"))
