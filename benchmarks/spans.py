"""RAFT on span questions against RAFT on hand-written questions, on the demo and on RealTimeQA.

    .venv/bin/python benchmarks/spans.py [--data demo|realtimeqa] [--quick] [--render]

The same corpus, recipe and number of SFT steps; only the training questions differ: the
hand-written ones, or `questions.source=spans` (a cloze question from every sentence with a number,
date or name; no model, no labels). Each arm is scored closed-book and with RAG (no gate or
verifier: what training alone does) against base+RAG, on accuracy (log-likelihood choice after the
reply) and on questions whose evidence is absent (answered = hallucinated).

The demo: corpora/demo/v1, recipes/raft_build_abstain.yaml then recipes/sft_lora_abstain.yaml
with the build's closed-book rows mixed in (as `make demo` step 4); the 144 hand-written training
questions of corpora/demo/train_qa_v1.jsonl against span questions of the same documents; scored
over the v1 index (top-3) on the 35 `unchanged` evaluation questions and the 15 `unanswerable` ones.

RealTimeQA: the split of benchmarks/hallucination.py (v1 questions split by document, seed by
seed): its training questions against span questions of every training passage,
recipes/raft_build_abstain.yaml then recipes/sft_lora_abstain.yaml (hallucination.py's steps);
every held-out question is asked over the index of all 2021 passages (top-4) as it is and without
its passage (evidence absent).
"""

from __future__ import annotations

import json

import hallucination
import pipeline as p
from results import bench_main, describe, table

DEMO = p.ROOT / "corpora" / "demo"
DEMO_CHUNKS = ["--set", "retrieval.chunking.size=128", "--set", "retrieval.chunking.overlap=16"]
STATUSES = ("unchanged", "unanswerable")
HEADLINE = ("accuracy", "unanswerable_answered_rate", "truthfulness")


def build_and_train(steps: p.Steps, work, arm: str, corpus, questions, build, train) -> str:
    """The arm's RAFT build (`questions`: its --qa or --set args) and SFT-LoRA run; returns the
    run folder."""
    data, run = work / f"raft-{arm}", work / "runs" / arm
    steps.run(
        f"RAFT data ({arm} questions)",
        "build-dataset",
        str(corpus),
        *questions,
        "--out",
        str(data),
        "--config",
        "recipes/raft_build_abstain.yaml",
        *build,
        "--overwrite",
    )
    train = [a.replace("{data}", str(data)) for a in train]
    steps.run(
        f"SFT-LoRA ({arm} questions)",
        "train",
        "--config",
        "recipes/sft_lora_abstain.yaml",
        *("--set", f"data.path={data}", "--set", f"output_dir={run}"),
        *train,
        "--overwrite",
    )
    return str(run)


def compare_arms(
    args,
    steps: p.Steps,
    work,
    arms,
    *,
    index,
    top_k,
    questions,
    seed,
    max_new_tokens,
    unanswerable,
    label,
) -> None:
    """Build and train both arms (`arms`: corpus, the hand-written QA file, build-dataset and train
    args), then one compare step `label` of base+RAG and each arm closed-book and with RAG (top_k
    of `index` under work/indexes, no gate or verifier) on `questions`."""
    corpus, hand_qa, build, train = arms
    questions_of = {"hand": ["--qa", str(hand_qa)], "spans": ["--set", "questions.source=spans"]}
    runs = {
        arm: build_and_train(steps, work, arm, corpus, q, build, train)
        for arm, q in questions_of.items()
    }
    rag = {"mode": "rag", "index": index, "top_k": top_k, "min_score": "off", "verifier": ""}
    systems = _systems(args, runs, rag)
    idx = str(work / "indexes")
    cfg = p.compare_config(systems, questions, idx, args.model, seed, max_new_tokens)
    cfg["baseline"] = "base+rag"
    cfg["unanswerable"] = unanswerable
    p.compare_step(steps, work, cfg, label)


def _systems(args, runs: dict, rag: dict) -> list[dict]:
    systems = [{"name": "base+rag", "model": args.model, **rag}]
    for arm, run in runs.items():
        systems += [
            {"name": arm, "model": run, "mode": "closed"},
            {"name": f"{arm}+rag", "model": run, **rag},
        ]
    return systems


def measure_demo(args, steps: p.Steps, work) -> dict:
    rows = [r for r in p.read_jsonl(DEMO / "qa.jsonl") if r["status"] in STATUSES]
    p.write_jsonl(work / "eval_qa.jsonl", rows)
    idx = work / "indexes"
    steps.run(
        "index demo v1",
        "index",
        "build",
        str(DEMO / "v1"),
        *("--name", "demo", "--indexes-dir", str(idx)),
        *DEMO_CHUNKS,
    )
    build = [
        *DEMO_CHUNKS,
        *("--set", f"retrieval.indexes_dir={idx}", "--set", "index_name=demo"),
        *("--set", "assembly.num_distractors=2", "--set", "assembly.eval_fraction=0"),
        *("--set", f"assembly.seed={args.seed}"),
    ]
    train = [
        *("--set", "data.mix=[{data}/dsf_train.jsonl]", "--set", "data.max_length=640"),
        *("--set", f"optim.max_steps={args.steps or 64}", "--set", f"seed={args.seed}"),
    ]
    compare_arms(
        args,
        steps,
        work,
        (DEMO / "v1", DEMO / "train_qa_v1.jsonl", build, train),
        index="demo",
        top_k=3,
        questions=work / "eval_qa.jsonl",
        seed=0,
        max_new_tokens=64,
        unanswerable={"use_status": True, "holdout_docs": 0.0},
        label="compare on the demo's unchanged and unanswerable questions",
    )
    return {
        "steps_per_run": args.steps or 64,
        "evaluated": {s: sum(r["status"] == s for r in rows) for s in STATUSES},
    }


def measure_realtimeqa(args, steps: p.Steps, work) -> dict:
    train_rows, test = hallucination.split(args, work)
    idx = work / "indexes"
    steps.run(
        "index all 2021 passages",
        "index",
        "build",
        str(p.SHARED / "realtimeqa" / "corpus_v2.jsonl"),
        *("--name", "news", "--indexes-dir", str(idx)),
        *p.CHUNKING,
    )
    build = [
        *p.CHUNKING,
        *("--set", f"retrieval.indexes_dir={idx}", "--set", f"assembly.seed={args.seed}"),
        *("--set", "assembly.eval_fraction=0"),
    ]
    sft_steps = args.steps or hallucination.SIZES[args.quick][1]
    train = [
        *("--set", f"model={args.model}", "--set", f"optim.max_steps={sft_steps}"),
        *("--set", f"seed={args.seed}"),
    ]
    compare_arms(
        args,
        steps,
        work,
        (work / "train_corpus.jsonl", work / "train_qa.jsonl", build, train),
        index="news",
        top_k=4,
        questions=work / "test_qa.jsonl",
        seed=args.seed,
        max_new_tokens=96,
        unanswerable={"use_status": False, "holdout_docs": 1.0, "seed": args.seed},
        label="compare: each held-out question with and without its evidence",
    )
    return {
        "steps_per_run": sft_steps,
        "evaluated": {"answerable": len(test), "evidence absent": len(test)},
        "trained_questions": len(train_rows),
    }


def measure(args) -> dict:
    work = p.workdir(_section(args))
    steps = p.Steps()
    got = (measure_realtimeqa if args.data == "realtimeqa" else measure_demo)(args, steps, work)
    res = p.results(work / "report")
    return {
        "data": args.data,
        "quick": args.quick,
        "seed": args.seed,
        "model": args.model,
        **got,
        "metrics": p.metrics(work / "report"),
        "paired": {s["name"]: s["paired"] for s in res["systems"]},
        "examples": {arm: _questions(work / f"raft-{arm}") for arm in ("hand", "spans")},
        "steps": steps.records(),
    }


def _questions(build) -> int:
    return json.loads((build / "manifest.json").read_text())["summary"]["questions"]


def _setup(d: dict) -> str:
    """The docstring's common paragraph and the data set's own, with this run's sizes."""
    paras = __doc__.split("\n\n")
    own = {"demo": paras[3], "realtimeqa": paras[4]}[d.get("data", "demo")]
    evaluated = ", ".join(f"{n} {k}" for k, n in d["evaluated"].items())
    return (
        " ".join([paras[2], own]).replace("\n", " ").strip()
        + f" {d['steps_per_run']} SFT steps per arm (seed {d['seed']}); training questions: hand "
        f"{d['examples']['hand']}, spans {d['examples']['spans']}; evaluated on {evaluated} "
        "questions."
    )


def render(d: dict) -> str:
    from raftkit.compare.metrics import REGISTRY

    d.setdefault("evaluated", d.get("questions"))  # data files written before --data
    names = list(d["metrics"])
    rows = [[REGISTRY[m].label, *[p.cell(d["metrics"][s].get(m)) for s in names]] for m in HEADLINE]
    against = [n for n in names if n.endswith("+rag") and n != "base+rag"]
    hand, spans = d["metrics"].get("hand+rag", {}), d["metrics"].get("spans+rag", {})
    total = sum(s["seconds"] for s in d["steps"])
    command = d.get("command", "python benchmarks/spans.py").removeprefix("python ")
    return "\n\n".join(
        [
            f"## RAFT on span questions (`{command}`)",
            f"Machine: {describe(d['machine'])}. {_setup(d)} Total {total / 60:.1f} min.",
            "Per system (%, bootstrap 95% interval; truthfulness in points):",
            table(["metric", *names], rows),
            "Paired against base+RAG (points):",
            table(
                ["metric", *against],
                [
                    [REGISTRY[m].label, *[p.cell(d["paired"][s].get(m), True) for s in against]]
                    for m in HEADLINE
                ],
            ),
            f"With RAG, span questions give accuracy {p.cell(spans.get('accuracy'))} against "
            f"{p.cell(hand.get('accuracy'))} for the hand-written ones.",
            "Steps (each is a raftkit command; rerun them to reproduce):",
            p.steps_table(d["steps"]),
        ]
    )


def _section(args) -> str:
    """spans (the demo), or spans-realtimeqa[-quick][-seedN]."""
    if args.data == "demo":
        return "spans"
    return p.section("spans-realtimeqa")(args) + (f"-seed{args.seed}" if args.seed else "")


def add_args(parser) -> None:
    p.add_args(parser)
    parser.add_argument("--data", choices=("demo", "realtimeqa"), default="demo")
    parser.add_argument(
        "--steps",
        type=int,
        default=0,
        help="SFT steps per arm (0: make demo's 64 on the demo, hallucination.py's on RealTimeQA)",
    )


if __name__ == "__main__":
    bench_main("spans", __doc__, measure, render, add_args, section=_section)
