"""RAFT on span questions against RAFT on hand-written questions, on the demo.

    .venv/bin/python benchmarks/spans.py [--steps 64] [--render]

The same demo v1 corpus, recipe (recipes/raft_build_abstain.yaml, then recipes/sft_lora_abstain.yaml
with the build's closed-book rows mixed in, as `make demo` step 4) and number of steps; only the
questions differ: the 144 hand-written training questions of corpora/demo/train_qa_v1.jsonl, or
`questions.source=spans` (a cloze question from every sentence with a number, date or name; no
model, no labels). Both are scored on the demo's evaluation questions over the v1 index: the 35
`unchanged` ones (accuracy, log-likelihood choice after the reply) and the 15 `unanswerable` ones
(answered = hallucinated), closed-book and with RAG (top-3, no gate or verifier: what training
alone does).
"""

from __future__ import annotations

import pipeline as p
from results import bench_main, describe, table

DEMO = p.ROOT / "corpora" / "demo"
CHUNKS = ["--set", "retrieval.chunking.size=128", "--set", "retrieval.chunking.overlap=16"]
ARMS = {
    "hand": ["--qa", str(DEMO / "train_qa_v1.jsonl")],
    "spans": ["--set", "questions.source=spans"],
}
STATUSES = ("unchanged", "unanswerable")
HEADLINE = ("accuracy", "unanswerable_answered_rate", "truthfulness")


def build_and_train(steps: p.Steps, work, arm: str, args) -> str:
    """The arm's RAFT build and SFT-LoRA run; returns the run folder."""
    data, run = work / f"raft-{arm}", work / "runs" / arm
    steps.run(
        f"RAFT data ({arm} questions)",
        "build-dataset",
        str(DEMO / "v1"),
        *ARMS[arm],
        "--out",
        str(data),
        "--config",
        "recipes/raft_build_abstain.yaml",
        *CHUNKS,
        "--set",
        f"retrieval.indexes_dir={work / 'indexes'}",
        "--set",
        "index_name=demo",
        "--set",
        "assembly.num_distractors=2",
        "--set",
        "assembly.eval_fraction=0",
        "--set",
        f"assembly.seed={args.seed}",
        "--overwrite",
    )
    steps.run(
        f"SFT-LoRA ({arm} questions)",
        "train",
        "--config",
        "recipes/sft_lora_abstain.yaml",
        "--set",
        f"data.path={data}",
        "--set",
        f"data.mix=[{data / 'dsf_train.jsonl'}]",
        "--set",
        f"output_dir={run}",
        "--set",
        "data.max_length=640",
        "--set",
        f"optim.max_steps={args.steps}",
        "--set",
        f"seed={args.seed}",
        "--overwrite",
    )
    return str(run)


def measure(args) -> dict:
    work = p.workdir("spans")
    rows = [r for r in p.read_jsonl(DEMO / "qa.jsonl") if r["status"] in STATUSES]
    p.write_jsonl(work / "eval_qa.jsonl", rows)
    steps = p.Steps()
    steps.run(
        "index demo v1",
        "index",
        "build",
        str(DEMO / "v1"),
        "--name",
        "demo",
        "--indexes-dir",
        str(work / "indexes"),
        *CHUNKS,
    )
    runs = {arm: build_and_train(steps, work, arm, args) for arm in ARMS}
    rag = {"mode": "rag", "index": "demo", "top_k": 3, "min_score": "off", "verifier": ""}
    systems = [{"name": "base+rag", "model": args.model, **rag}]
    for arm, run in runs.items():
        systems += [
            {"name": f"{arm}", "model": run, "mode": "closed"},
            {"name": f"{arm}+rag", "model": run, **rag},
        ]
    cfg = p.compare_config(systems, work / "eval_qa.jsonl", str(work / "indexes"), args.model, 0)
    cfg["baseline"] = "base+rag"
    cfg["unanswerable"] = {"use_status": True, "holdout_docs": 0.0}
    p.compare_step(steps, work, cfg, "compare on the demo's unchanged and unanswerable questions")
    res = p.results(work / "report")
    return {
        "steps_per_run": args.steps,
        "seed": args.seed,
        "model": args.model,
        "questions": {s: sum(r["status"] == s for r in rows) for s in STATUSES},
        "metrics": p.metrics(work / "report"),
        "paired": {s["name"]: s["paired"] for s in res["systems"]},
        "examples": {arm: _examples(work / f"raft-{arm}") for arm in ARMS},
        "steps": steps.records(),
    }


def _examples(build) -> int:
    import json

    return json.loads((build / "manifest.json").read_text())["summary"]["questions"]


def render(d: dict) -> str:
    from raftkit.compare.metrics import REGISTRY

    names = list(d["metrics"])
    rows = [[REGISTRY[m].label, *[p.cell(d["metrics"][s].get(m)) for s in names]] for m in HEADLINE]
    against = [n for n in names if n.endswith("+rag") and n != "base+rag"]
    hand, spans = d["metrics"].get("hand+rag", {}), d["metrics"].get("spans+rag", {})
    total = sum(s["seconds"] for s in d["steps"])
    return "\n\n".join(
        [
            "## RAFT on span questions (`benchmarks/spans.py`)",
            f"Machine: {describe(d['machine'])}. "
            + __doc__.split("\n\n")[2].replace("\n", " ").strip()
            + f" {d['steps_per_run']} SFT steps per arm; training questions: hand "
            f"{d['examples']['hand']}, spans {d['examples']['spans']}; evaluated on "
            f"{d['questions']['unchanged']} unchanged and {d['questions']['unanswerable']} "
            f"unanswerable questions. Total {total / 60:.1f} min.",
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


def add_args(parser) -> None:
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=64, help="SFT steps per arm (make demo: 64)")


if __name__ == "__main__":
    bench_main("spans", __doc__, measure, render, add_args)
