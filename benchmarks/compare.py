"""Questions/s of `raftkit compare`: the old float32 two-prefill path against the default.

The 135M default: the float32 path with a second prefill for the
choice log-likelihoods (how compare worked until commit d74e6c5) against the runtime default (bf16
on this CPU) scoring the choices from its generation's own KV cache. Same questions, one process.

    .venv/bin/python benchmarks/compare.py [--questions 24] [--batch-size 8] [--max-new-tokens 48]

A closed-book and a RAG system (index of corpora/demo/v2, top-3) answer a seeded sample of
corpora/demo/qa.jsonl; choices are scored after each reply (`scoring.mc_after: reply`, what the
real-data benchmarks use). Questions/s counts generation plus choice scoring (retrieval is shared
and excluded). Writes benchmarks/data/compare.json and the `compare` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from results import ROOT, bench_main, describe, peak_rss_mb, table

MODEL = "smollm2-135m-instruct"
PATHS = {"float32, second prefill": ("float32", True), "auto, one prefill": ("auto", False)}


def two_prefill_factory(rt):
    """The old path as a generator: generate, then run every prompt again to score the choices."""
    import torch

    from raftkit import prompts
    from raftkit.generate import Answer, HFGenerator, choice_continuation

    class TwoPrefill(HFGenerator):
        def _answer(self, conversations, choices, after_reply, desc, max_new_tokens):
            plain = super()._answer(conversations, None, False, desc, max_new_tokens)
            replies = [a.reply for a in plain]
            out = []
            for conv, reply, ch in zip(conversations, replies, choices or [[]] * len(replies)):
                prefix = prompts.reasoning(reply) if after_reply else ""
                scores = (
                    self._second_prefill(conv, [prefix + choice_continuation(c) for c in ch])
                    if ch
                    else None
                )
                out.append(Answer(reply, scores))
            return out

        def _second_prefill(self, conv, continuations):
            """The prompt once more, its KV cache shared by the continuations
            (the old shared_prompt_loglik)."""
            prompt = self.prompt_ids(conv)
            conts = [
                self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations
            ]
            pad = self.tokenizer.pad_token_id or 0
            n, width, dev = len(conts), max(map(len, conts)), self.model.device
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([prompt], device=dev), use_cache=True)
                first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                cache = out.past_key_values
                cache.batch_repeat_interleave(n)
                ids = torch.tensor([c + [pad] * (width - len(c)) for c in conts], device=dev)
                mask = torch.tensor(
                    [[1] * (len(prompt) + len(c)) + [0] * (width - len(c)) for c in conts],
                    device=dev,
                )
                positions = torch.arange(len(prompt), len(prompt) + width, device=dev).expand(
                    n, width
                )
                logits = self.model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                ).logits
                logp = torch.log_softmax(logits.float(), dim=-1)
            return [
                float(
                    first[c[0]]
                    + (
                        logp[i, : len(c) - 1].gather(1, ids[i, 1 : len(c), None]).sum()
                        if len(c) > 1
                        else 0.0
                    )
                )
                for i, c in enumerate(conts)
            ]

    return lambda gcfg: TwoPrefill(gcfg, rt)


def run(label: str, args, indexes: Path, out: Path):
    from raftkit import config
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare
    from raftkit.models import runtime

    dtype, old = PATHS[label]
    cfg = config.load(
        CompareConfig,
        data={
            "systems": [
                {"name": "base", "model": MODEL, "mode": "closed"},
                {"name": "base+rag", "model": MODEL, "mode": "rag", "index": "bench", "top_k": 3},
            ],
            "questions": {
                "path": str(ROOT / "corpora/demo/qa.jsonl"),
                "max_questions": args.questions,
                "seed": 0,
            },
            "generation": {"batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens},
            "runtime": {"dtype": dtype},
            "indexes_dir": str(indexes),
            "build_indexes": {"bench": str(ROOT / "corpora/demo/v2")},
            "scoring": {"ragas": False, "mc_after": "reply"},
            "bootstrap": {"samples": 100},
        },
    )
    t0 = time.perf_counter()
    report = compare(
        cfg, out, generator_factory=two_prefill_factory(runtime(cfg.runtime)) if old else None
    )
    return report, time.perf_counter() - t0


def measure(args) -> dict:
    import os

    os.environ.setdefault("RAFTKIT_QUIET", "1")
    paths = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, label in enumerate(PATHS):
            report, wall = run(label, args, tmp / "indexes", tmp / f"run{i}")
            paths[label] = {
                "wall_s": wall,
                "dtype": report.results["runtime"]["dtype"],
                "systems": {
                    s.name: {
                        "seconds": s.speed["seconds"],
                        "questions": s.questions,
                        "questions_per_s": s.speed["questions_per_s"],
                        "accuracy": s.metrics["accuracy"].value,
                        "correct": sum(bool(r.correct) for r in report.rows if r.system == s.name),
                        "answers": {r.qid: r.answer for r in report.rows if r.system == s.name},
                        "picks": {
                            r.qid: r.mc_loglik_pick for r in report.rows if r.system == s.name
                        },
                    }
                    for s in report.systems
                },
            }
    return {
        "questions": args.questions,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "paths": paths,
        "peak_rss_mb": peak_rss_mb(),
    }


def render(d: dict) -> str:
    old, new = (d["paths"][k] for k in PATHS)
    rows = []
    for label, p in d["paths"].items():
        for name, s in p["systems"].items():
            rows.append(
                [
                    label,
                    p["dtype"],
                    name,
                    s["questions"],
                    round(s["seconds"], 1),
                    round(s["questions_per_s"], 3),
                    f"{100 * s['accuracy']:.1f}% ({s['correct']})",
                ]
            )
    lines = []
    for name in old["systems"]:
        a, b = old["systems"][name], new["systems"][name]
        n = len(a["answers"])
        same = sum(a["answers"][q] == b["answers"].get(q) for q in a["answers"])
        picked = sum(a["picks"][q] == b["picks"].get(q) for q in a["picks"])
        lines.append(
            f"{name}: {b['questions_per_s'] / a['questions_per_s']:.2f}x the questions/s, the same "
            f"generated answer on {same} of {n} questions ({100 * same / n:.0f}%), the same scored "
            f"choice on {picked} ({100 * picked / n:.0f}%), "
            f"{b['correct'] - a['correct']:+d} correct"
        )
    return "\n\n".join(
        [
            "## Comparator (`benchmarks/compare.py`)",
            f"Machine: {describe(d['machine'])}. Peak RSS {d['peak_rss_mb']:,.0f} MiB. Command: "
            f"`{d['command']}`.",
            f"{d['questions']} seeded questions of corpora/demo/qa.jsonl, {MODEL}, greedy, "
            f"max_new_tokens {d['max_new_tokens']}, batch {d['batch_size']}; base = closed-book, "
            "base+rag = top-3 chunks of corpora/demo/v2; choices scored after each reply. "
            "*float32, second prefill* is how compare ran until commit d74e6c5: generate, then "
            "feed every prompt again to score the choices. *auto, one prefill* is now: the "
            "runtime's dtype (bf16 here) and the choices scored from the generation's own KV "
            "cache.",
            table(
                [
                    "path",
                    "dtype",
                    "system",
                    "questions",
                    "seconds",
                    "questions/s",
                    "accuracy (correct)",
                ],
                rows,
            ),
            "**Against the old path:** "
            + "; ".join(lines)
            + ". Greedy generation is chaotic: one bf16 rounding that flips a near-tied token "
            "rewrites the rest of the reply, so whole replies match less often than the choice "
            "the log-likelihoods pick after them, which is what accuracy counts. The cache-based "
            "scores equal a fresh forward to 1e-3 in float32 (tests/test_compare_report.py).",
        ]
    )


def add_args(parser) -> None:
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)


if __name__ == "__main__":
    bench_main("compare", __doc__, measure, render, add_args)
