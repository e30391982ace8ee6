"""Hallucination on RealTimeQA: train a model to abstain when the evidence is absent.

    .venv/bin/python benchmarks/hallucination.py [--quick] [--render]

The v1 questions of ../shared/benchmarks/realtimeqa are split by document; the training part becomes
RAFT data with the abstain recipe (recipes/raft_build_abstain.yaml: P=0.8 of the examples with their
evidence, the rest with the refusal as target; the build also calibrates the evidence gate on these
questions), then SFT-LoRA (recipes/sft_lora_abstain.yaml) and DPO on the build's preference pairs,
starting from and measured against the SFT run (recipes/dpo_lora_abstain.yaml). Every held-out
question is asked twice over an index of all 2021 passages: as it is (answerable) and over the index
without its passage (`unanswerable.holdout_docs: 1`, evidence absent). base+RAG (plain, no gate),
base+RAG with the build's gate, RAFT-SFT+RAG without and with it and RAFT-SFT+DPO+RAG with it are
scored with paired differences against base+RAG. Writes benchmarks/data/hallucination[-quick].json
and its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pipeline as p
from results import bench_main, describe, table

# base+rag is the plain baseline (no gate); +gate applies the evidence gate the build calibrated on
# the training questions, +verifier the trained evidence verifier (benchmarks/verifier.py measures
# its separation alone), +both the two combined; the RAFT models are shown without a gate too, to
# tell what each part does
SYSTEMS = (
    "base+rag",
    "base+rag+gate",
    "base+rag+verifier",
    "raft-sft+rag",
    "raft-sft+rag+gate",
    "raft-sft+rag+verifier",
    "raft-sft+rag+both",
    "base+rag+verifier+rerank",
    "raft-sft+rag+verifier+rerank",
    "raft-dpo+rag+gate",
)
HEADLINE = (
    "accuracy",
    "over_refusal_rate",
    "unanswerable_answered_rate",
    "truthfulness",
    "refusal_f1",
    "selective_accuracy",
    "confident_wrong_rate",
)
# the verifier against the cosine gate on the same model: paired per question
AGAINST_GATE = (
    ("base+rag+verifier", "base+rag+gate"),
    ("raft-sft+rag+verifier", "raft-sft+rag+gate"),
    ("base+rag+verifier+rerank", "base+rag+gate"),
    ("raft-sft+rag+verifier+rerank", "raft-sft+rag+gate"),
)
# +verifier: a verifier judging the 4 chunks the prompt shows; +rerank: one judging DEPTH (the
# recipe's verifier.top_k, chosen by out-of-fold AUC on the training questions, RESULTS.md), the
# prompt showing its best 4, so a passage retrieval ranks 5th to 8th can come in
DEPTH = 8
# per_question.csv columns compared there: (column, label)
PAIRED_COLUMNS = (("truthfulness", "Truthfulness score"), ("hallucinated", "Unanswerable answered"))
# (held-out questions, SFT steps, DPO steps): full run under 60 min on 2 CPU cores, quick under 15
SIZES = {True: (20, 24, 6), False: (60, 90, 20)}


def split(args, work):
    """(training questions, held-out questions, training corpus path): v1 split by document; the
    training corpus lacks the held-out passages, so none of them is ever a training distractor."""
    test_n = SIZES[args.quick][0]
    v1 = [r for r in p.read_jsonl(p.SHARED / "realtimeqa" / "qa.jsonl") if r.get("period") == "v1"]
    docs = sorted({r["doc_ids"][0] for r in v1})
    random.Random(args.seed).shuffle(docs)
    held = set(docs[:test_n])
    test = [r for r in v1 if r["doc_ids"][0] in held]
    train = [r for r in v1 if r["doc_ids"][0] not in held]
    corpus = [
        d for d in p.read_jsonl(p.SHARED / "realtimeqa" / "corpus_v2.jsonl") if d["id"] not in held
    ]
    p.write_jsonl(work / "train_qa.jsonl", train)
    p.write_jsonl(work / "test_qa.jsonl", test)
    p.write_jsonl(work / "train_corpus.jsonl", corpus)
    return train, test


def build(steps: p.Steps, work, args) -> None:
    """RAFT data with abstain targets from the training questions; the build calibrates the
    gate."""
    idx = str(work / "indexes")
    steps.run(
        "RAFT data with abstain targets and the evidence gate",
        "build-dataset",
        str(work / "train_corpus.jsonl"),
        "--qa",
        str(work / "train_qa.jsonl"),
        "--out",
        str(work / "raft"),
        "--config",
        "recipes/raft_build_abstain.yaml",
        *p.CHUNKING,
        "--set",
        f"retrieval.indexes_dir={idx}",
        "--set",
        f"assembly.seed={args.seed}",
        "--set",
        "assembly.eval_fraction=0",  # every training question trains; the held-out ones test
        *[a for kv in args.build_set for a in ("--set", kv)],
    )


def train_verifier(steps: p.Steps, work, args, depth: int = 4) -> str:
    """The evidence verifier from the build (recipes/verifier.yaml), judging `depth` chunks per
    question; returns its run (runs/verifier for 4, the chunks the RAG systems show)."""
    run = str(work / "runs" / ("verifier" if depth == 4 else f"verifier-{depth}"))
    steps.run(
        "evidence verifier from the build" + (f", judging {depth} chunks" if depth != 4 else ""),
        "train",
        "--config",
        "recipes/verifier.yaml",
        *("--set", f"data.path={work / 'raft'}", "--set", f"output_dir={run}"),
        *("--set", f"seed={args.seed}", "--set", f"verifier.top_k={depth}", "--overwrite"),
    )
    return run


def train(steps: p.Steps, work, args) -> tuple[str, str, str]:
    """RAFT data with abstain targets, the verifier, SFT-LoRA carrying it, DPO from the SFT run;
    returns the three runs."""
    _, sft_steps, dpo_steps = SIZES[args.quick]
    sft, dpo = str(work / "runs" / "sft"), str(work / "runs" / "dpo")
    build(steps, work, args)
    verifier = train_verifier(steps, work, args)
    raft = work / "raft"
    _train(
        steps, "SFT-LoRA", "recipes/sft_lora_abstain.yaml", args.model, raft, sft, sft_steps, args
    )
    if args.no_dpo:
        return verifier, sft, None
    _train(
        steps,
        "DPO from the SFT run",
        "recipes/dpo_lora_abstain.yaml",
        sft,
        raft,
        dpo,
        dpo_steps,
        args,
    )
    return verifier, sft, dpo


def _train(steps: p.Steps, label: str, recipe: str, model, data, out, max_steps: int, args) -> None:
    """One `raftkit train` step of a recipe, with its model, data, run folder, steps and seed."""
    sets = {
        "model": model,
        "evidence_verifier": str(Path(out).parent / "verifier"),
        "data.path": data,
        "output_dir": out,
        "optim.max_steps": max_steps,
        "seed": args.seed,
    }
    steps.run(
        label,
        "train",
        "--config",
        recipe,
        *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
        "--overwrite",
    )


def _column(rows: list[dict], column: str) -> dict[str, float]:
    """{qid: value} of a per_question.csv column (True/False as 1/0; blanks left out)."""
    conv = {"True": 1.0, "False": 0.0}
    return {
        r["qid"]: conv[r[column]] if r[column] in conv else float(r[column])
        for r in rows
        if r[column]
    }


def against_gate(report: Path, seed: int, samples: int = 2000) -> dict:
    """{verifier system: {column: {value, ci}}}: the verifier system minus the cosine-gate system of
    the same model, in points, with a paired bootstrap over the questions both answered."""
    import numpy as np

    rows = p.per_question(report)
    out = {}
    for mine, theirs in AGAINST_GATE:
        out[mine] = {}
        for column, _ in PAIRED_COLUMNS:
            a = _column([r for r in rows if r["system"] == mine], column)
            b = _column([r for r in rows if r["system"] == theirs], column)
            shared = sorted(set(a) & set(b))
            if not shared:
                continue
            diff = np.array([a[q] - b[q] for q in shared])
            draws = np.random.default_rng(seed).integers(0, len(diff), (samples, len(diff)))
            lo, hi = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
            out[mine][column] = {"value": float(diff.mean()), "ci": [float(lo), float(hi)]}
    return out


def measure(args) -> dict:
    work = p.workdir(_section(args))
    train_rows, test = split(args, work)
    steps, idx = p.Steps(), str(work / "indexes")
    steps.run(
        "index all 2021 passages",
        "index",
        "build",
        str(p.SHARED / "realtimeqa" / "corpus_v2.jsonl"),
        "--name",
        "news",
        "--indexes-dir",
        idx,
        *p.CHUNKING,
    )
    verifier, sft, dpo = train(steps, work, args)
    deep = train_verifier(steps, work, args, DEPTH)
    rag = {"mode": "rag", "index": "news", "top_k": 4}
    rerank = {"verifier": deep, "rerank": True}  # candidates auto: the DEPTH it was trained on
    off = {"min_score": "off", "verifier": ""}
    gate = json.loads((work / "raft" / "manifest.json").read_text())["summary"]["evidence_gate"]
    cfg = {
        "systems": [
            {"name": "base+rag", "model": args.model, **rag, **off},
            {
                "name": "base+rag+gate",
                "model": args.model,
                **rag,
                **off,
                "min_score": gate["min_score"],
            },
            {"name": "base+rag+verifier", "model": args.model, **rag, "verifier": verifier},
            {"name": "raft-sft+rag", "model": sft, **rag, **off},
            # the cosine gate the run carries from its build
            {"name": "raft-sft+rag+gate", "model": sft, **rag, "verifier": "", "gate": "score"},
            {"name": "raft-sft+rag+verifier", "model": sft, **rag},  # auto: the verifier it carries
            {"name": "raft-sft+rag+both", "model": sft, **rag, "gate": "both"},
            {"name": "base+rag+verifier+rerank", "model": args.model, **rag, **rerank},
            {"name": "raft-sft+rag+verifier+rerank", "model": sft, **rag, **rerank},
            {"name": "raft-dpo+rag+gate", "model": dpo, **rag, "verifier": "", "gate": "score"},
        ][: None if dpo else -1],
        "baseline": "base+rag",
        "questions": {"path": str(work / "test_qa.jsonl")},
        "generation": {"max_new_tokens": 96, "batch_size": 16},
        "indexes_dir": idx,
        "scoring": {"mc": "loglik", "mc_after": "reply", "ragas": False},
        "freshness": {"enable": False},
        "unanswerable": {"use_status": False, "holdout_docs": 1.0, "seed": args.seed},
        "bootstrap": {"samples": 2000, "seed": args.seed},
    }
    p.compare_step(
        steps, work, cfg, "compare: each held-out question with and without its evidence"
    )
    res = p.results(work / "report")
    return {
        "quick": args.quick,
        "no_dpo": args.no_dpo,
        "model": args.model,
        "seed": args.seed,
        "train": len(train_rows),
        "test": len(test),
        "sizes": SIZES[args.quick],
        "gate": gate,
        "metrics": p.metrics(work / "report"),
        "paired": {s["name"]: s["paired"] for s in res["systems"]},
        "against_gate": against_gate(work / "report", args.seed),
        "verdict": res["verdict"],
        "steps": steps.records(),
    }


def _setup(d: dict, total: float) -> str:
    _, sft_steps, dpo_steps = d["sizes"]
    return (
        f"Machine: {describe(d['machine'])}. Model: `{d['model']}` (135M). RealTimeQA v1 questions "
        f"split by document (seed {d['seed']}): {d['train']} to train on, {d['test']} held out. "
        "Each held-out question is asked twice over an index of all 630 passages of 2021, top-4: "
        "as it is (answerable: its passage is in the index) and over the index without its "
        "passage (evidence absent: any answer is a hallucination, an abstention is right). RAFT "
        "data: recipes/raft_build_abstain.yaml (80% of the examples show the passage, 20% only "
        "distractors with the refusal as target); SFT-LoRA "
        f"{sft_steps} steps (recipes/sft_lora_abstain.yaml)"
        + (
            " (no DPO run: `--no-dpo`)."
            if d.get("no_dpo")
            else f", then DPO {dpo_steps} steps from the SFT run (recipes/dpo_lora_abstain.yaml)."
        )
        + " `+verifier`: a verifier trained to judge the 4 chunks shown (verifier.top_k=4);"
        f" `+rerank`: one trained to judge {DEPTH} (verifier.top_k={DEPTH}, the recipe's), which"
        f" judges the top {DEPTH} and the prompt shows its best 4 (`rerank: true`)."
        + f" Total {total / 60:.1f} min."
        + _gate_line(d.get("gate"))
    )


def _gate_line(gate: dict | None) -> str:
    if not gate:
        return ""
    return (
        f" Evidence gate calibrated by build-dataset on the {gate['questions']} training questions "
        f"(each scored with and without its passage): abstain below {gate['min_score']:.3f}, which "
        f"there refused {100 * gate['answerable_refused']:.0f}% of answerable and let "
        f"{100 * gate['absent_answered']:.0f}% of evidence-absent through (AUC {gate['auc']:.2f})."
    )


def _against_gate_table(d: dict) -> list[str]:
    got = d.get("against_gate")
    if not got:
        return []
    rows = [
        [label, *[p.cell(got.get(mine, {}).get(col), signed=True) for mine, _ in AGAINST_GATE]]
        for col, label in PAIRED_COLUMNS
    ]
    heads = [f"{mine} - {theirs}" for mine, theirs in AGAINST_GATE]
    return [
        "The verifier against the cosine gate on the same model (points, paired bootstrap over "
        "the questions):",
        table(["metric", *heads], rows),
    ]


def render(d: dict) -> str:
    from raftkit.compare.metrics import REGISTRY

    rows = [
        [
            REGISTRY[m].label + ("" if REGISTRY[m].score else " %"),
            *[p.cell(d["metrics"].get(s, {}).get(m)) for s in SYSTEMS],
        ]
        for m in HEADLINE
    ]
    diffs = [
        [
            REGISTRY[m].label,
            *[p.cell(d["paired"].get(s, {}).get(m), signed=True) for s in SYSTEMS[1:]],
        ]
        for m in HEADLINE
    ]
    total = sum(s["seconds"] for s in d["steps"])
    command = d.get("command", "python benchmarks/hallucination.py").removeprefix("python ")
    return "\n\n".join(
        [
            f"## Hallucination (`{command}`)",
            _setup(d, total),
            "Per system (%, bootstrap 95% interval over questions; accuracy is the log-likelihood "
            "choice among 4 options after the reply, on answerable questions; truthfulness in "
            "points, -100..100):",
            table(["metric", *SYSTEMS], rows),
            "Paired differences against base+RAG (points, paired bootstrap over the questions):",
            table(["metric", *SYSTEMS[1:]], diffs),
            *_against_gate_table(d),
            "Verdict: " + "; ".join(d["verdict"]) + ".",
            "Steps (each is a raftkit command; rerun them to reproduce):",
            p.steps_table(d["steps"]),
        ]
    )


def _section(args) -> str:
    """hallucination[-quick], with -seedN for a split other than seed 0."""
    return p.section("hallucination")(args) + (f"-seed{args.seed}" if args.seed else "")


def add_args(parser) -> None:
    p.add_args(parser)
    parser.add_argument(
        "--no-dpo",
        action="store_true",
        help="skip the DPO run and its row (the slowest step; the gates are compared without it)",
    )
    parser.add_argument(
        "--build-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more --set for build-dataset (e.g. assembly.refusal=plain), repeatable",
    )


if __name__ == "__main__":
    bench_main("hallucination", __doc__, measure, render, add_args, section=_section)
