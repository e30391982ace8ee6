"""Questions/s of `raftkit compare` per system on the 135M default, batched against unbatched, one run.

    .venv/bin/python benchmarks/compare.py [--questions 24] [--batch-size 8] [--max-new-tokens 48]

The same seeded sample of corpora/demo/qa.jsonl is answered by a closed-book and a RAG system (index
of corpora/demo/v2, top-3) twice: generation.batch_size 1, then --batch-size. Questions/s counts
generation plus choice log-likelihoods (what `compare` spends per question); retrieval and ragas are
shared and excluded. Prints a table and writes the `compare` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import machine, peak_rss_mb, table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(batch_size: int, args, indexes: Path, out: Path) -> tuple[dict, float]:
    from raftkit import config
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare

    cfg = config.load(CompareConfig, data={
        "systems": [{"name": "base", "model": "smollm2-135m-instruct", "mode": "closed"},
                    {"name": "base+rag", "model": "smollm2-135m-instruct", "mode": "rag", "index": "bench",
                     "top_k": 3}],
        "questions": {"path": str(ROOT / "corpora/demo/qa.jsonl"), "max_questions": args.questions, "seed": 0},
        "generation": {"batch_size": batch_size, "max_new_tokens": args.max_new_tokens, "device": "cpu"},
        "indexes_dir": str(indexes), "build_indexes": {"bench": str(ROOT / "corpora/demo/v2")},
        "scoring": {"ragas": False}, "bootstrap": {"samples": 100}})
    t0 = time.perf_counter()
    report = compare(cfg, out)
    return report, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default); 1 avoids thread thrashing on a busy machine")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAFTKIT_QUIET", "1")
    from raftkit.ui import quiet_libraries

    quiet_libraries()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {bs: run(bs, args, tmp / "indexes", tmp / f"bs{bs}") for bs in (1, args.batch_size)}
    load_after = os.getloadavg()[0]
    rows, speeds = [], {}
    for bs, (report, wall) in runs.items():
        for s in report.results["systems"]:
            qps = s["speed"]["questions_per_s"]
            speeds[(bs, s["name"])] = qps
            gen_s = s["speed"].get("generate_seconds", 0.0)
            rows.append([s["name"], bs, s["questions"], round(s["speed"]["seconds"], 1), round(gen_s, 1),
                         round(s["speed"]["seconds"] - gen_s, 1), round(qps, 3),
                         f"{100 * s['metrics']['accuracy']['value']:.1f}%"])
    unbatched, batched = runs[1][0], runs[args.batch_size][0]
    same = sum(a["answer"] == b["answer"] for a, b in zip(unbatched.rows, batched.rows))
    speedups = {n: speeds[(args.batch_size, n)] / speeds[(1, n)] for n in ("base", "base+rag")}
    body = "\n".join([
        "## Comparator (`benchmarks/compare.py`)", "",
        f"Machine: {machine()}. Peak RSS {peak_rss_mb():,.0f} MiB. Command: "
        f"`.venv/bin/python benchmarks/compare.py --questions {args.questions} --batch-size {args.batch_size} "
        f"--max-new-tokens {args.max_new_tokens}" + (f" --threads {args.threads}" if args.threads else "") + "`. "
        f"torch threads: {torch.get_num_threads()}. The cores were shared with other jobs: 1-minute load average "
        f"{load_before:.1f} before and {load_after:.1f} after, so absolute rates are pessimistic; the "
        "batched/unbatched ratio is the point.", "",
        f"{args.questions} seeded questions of corpora/demo/qa.jsonl, smollm2-135m-instruct on CPU, greedy, "
        f"max_new_tokens {args.max_new_tokens}; base = closed-book, base+rag = top-3 chunks of corpora/demo/v2. "
        "Seconds and questions/s cover generation plus the choice log-likelihoods of each question (one prompt "
        "pass per question, its KV cache shared by the choices).", "",
        table(["system", "batch size", "questions", "seconds", "generation s", "choice log-lik s", "questions/s",
               "accuracy"], rows), "",
        f"Batching ({args.batch_size}) speeds up base {speedups['base']:.2f}x and base+rag {speedups['base+rag']:.2f}x. "
        f"Answers identical between the two runs: {same} of {len(unbatched.rows)} (greedy decoding; padding can "
        f"shift a float rounding). Wall time of the two runs: {runs[1][1]:.0f} s and "
        f"{runs[args.batch_size][1]:.0f} s (model loading and retrieval included). Batching pays off where "
        "decoding dominates (short closed-book prompts); RAG prompts (700-870 tokens here) are prefill-bound, and "
        "on one busy CPU thread a prefill costs the same batched or not.",
    ])
    print(body)
    if not args.no_write:
        print(f"wrote {write_section('compare', body)}")


if __name__ == "__main__":
    main()
