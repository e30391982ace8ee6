"""Training throughput: raftkit against float32 and against plain TRL; model FLOP/s.

raftkit SFT-LoRA at the machine's runtime (bf16 where the CPU has it) against the
same recipe in float32 and against a plain `trl.SFTTrainer` script with library defaults; QLoRA and
full fine-tuning beside them; model FLOP/s against this machine's measured matmul peak.

Each configuration runs in its own subprocess, one after another, so peak memory is that run's
alone. Tokens are the non-padding input tokens the trainer saw; tokens/s divides them by the
trainer's own train_runtime. Writes benchmarks/data/train.json and the `train` section of
benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/train.py            # ~10 min on 2 CPU cores
    .venv/bin/python benchmarks/train.py --steps 2 --no-write
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import ROOT, bench_main, describe, table

MODEL = "smollm2-135m-instruct"
RUNS = {  # name -> (what it is, raftkit --set values)
    "raftkit-lora": ("raftkit train, runtime auto", []),
    "raftkit-lora-fp32": ("raftkit train, runtime.dtype float32", ["runtime.dtype=float32"]),
    "trl-defaults-lora": ("plain trl.SFTTrainer, library defaults + the same LoRA", None),
    "raftkit-qlora": ("raftkit train, method qlora (4-bit NF4 base)", ["method=qlora"]),
    "raftkit-full": (
        "raftkit train, method full, runtime auto",
        ["method=full", "optim.lr=0.00002"],
    ),
    "raftkit-full-fp32": (
        "raftkit train, method full, float32",
        ["method=full", "optim.lr=0.00002", "runtime.dtype=float32"],
    ),
}
GPU_PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, for MFU


def make_data(path: Path, n: int = 64, seed: int = 0) -> None:
    """RAFT-like prompt-completion rows of varied length from the demo corpus
    (1-4 documents each)."""
    from raftkit import files
    from raftkit.prompts import ANSWER_TAG, BEGIN_QUOTE, END_QUOTE, rag_messages

    paras = []
    for f in sorted((ROOT / "corpora" / "demo" / "v1").glob("*.md")):
        paras += [p.strip() for p in f.read_text().split("\n\n") if len(p.split()) >= 12]
    rng, rows = random.Random(seed), []
    for _ in range(n):
        docs = rng.sample(paras, rng.randint(1, 4))
        sentence = re.split(r"(?<=[.!?])\s", docs[0])[0]
        words = sentence.split()
        answer = " ".join(words[-4:]).strip(".")
        rng.shuffle(docs)
        cot = (
            f"The document says {BEGIN_QUOTE}{sentence}{END_QUOTE} so the answer is {answer}.\n"
            f"{ANSWER_TAG} {answer}"
        )
        rows.append(
            {
                "prompt": rag_messages(
                    f"What does the guide say about {' '.join(words[:5])}?", docs
                ),
                "completion": [{"role": "assistant", "content": cot}],
            }
        )
    files.write_jsonl(path, rows)


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    """TFLOP/s of an n x n matmul in `dtype` on this machine
    (best of `repeats`, after a warm-up)."""
    import torch

    a, b = (torch.randn(n, n, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e12


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _raftkit(name: str, data: Path, steps: int, batch: int, max_length: int, run: Path) -> dict:
    from raftkit import files
    from raftkit.train.run import load_config, train

    s = train(
        load_config(
            str(ROOT / "recipes" / "sft_lora.yaml"),
            [
                f"model={MODEL}",
                f"output_dir={run}",
                f"data.path={data}",
                "data.eval_path=",
                f"data.max_length={max_length}",
                f"optim.max_steps={steps}",
                f"optim.batch_size={batch}",
                "optim.grad_accum=1",
                "optim.save_steps=100000",
                "optim.logging_steps=1",
                *RUNS[name][1],
            ],
        )
    )
    steps_logged = [r for r in files.read_jsonl(run / "metrics.jsonl") if "train_runtime" in r]
    first = steps_logged[0] if steps_logged and steps_logged[0].get("step") == 1 else {}
    return {
        "tokens": s["tokens"],
        "train_s": s["train_runtime_s"],
        # the first step holds the one-off work (compiling the fused LoRA kernels)
        "first_step_s": first.get("train_runtime"),
        "first_step_tokens": first.get("num_input_tokens_seen"),
        "cpu_s": s["train_cpu_s"],
        "peak_mem_mb": s["peak_mem_mb"],
        "first_loss": s["first_loss"],
        "final_loss": s["final_loss"],
        "trainable": s["trainable_params"],
        "precision": s["precision"],
    }


def _trl_defaults(data: Path, steps: int, batch: int, max_length: int, run: Path) -> dict:
    """What a user writes from the TRL docs: SFTConfig defaults (bf16 autocast, gradient
    checkpointing, no packing, padded batches); only what must match (steps, batch, LoRA, learning
    rate) is set."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from raftkit import models
    from raftkit.train.runfolder import cpu_seconds, peak_memory_mb

    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(models.resolve_path(MODEL))
    tok = models.load_tokenizer(MODEL, padding_side="right")
    args = SFTConfig(
        output_dir=str(run),
        max_steps=steps,
        per_device_train_batch_size=batch,
        max_length=max_length,
        use_cpu=not cuda,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        learning_rate=2e-4,
        include_num_input_tokens_seen="non_padding",
        seed=0,
    )
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    train_ds = datasets.load_dataset("json", data_files=str(data), split="train")
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train_ds, processing_class=tok, peft_config=lora
    )
    cpu0 = cpu_seconds()
    res = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "tokens": trainer.state.num_input_tokens_seen,
        "train_s": res.metrics["train_runtime"],
        "cpu_s": cpu_seconds() - cpu0,
        "peak_mem_mb": peak_memory_mb(cuda),
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "precision": "bfloat16 autocast (TRL default bf16=True)" if args.bf16 else "float32",
        "trainable": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
    }


def worker(name: str, data: Path, steps: int, batch: int, max_length: int, out: Path) -> None:
    """Train one configuration and write its measurements as JSON to `out`."""
    import warnings

    os.environ["RAFTKIT_QUIET"] = "1"
    from raftkit.ui import quiet_libraries

    quiet_libraries()
    warnings.filterwarnings("ignore")
    run = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "run"
    if RUNS[name][1] is None:
        result = _trl_defaults(data, steps, batch, max_length, run)
    else:
        result = _raftkit(name, data, steps, batch, max_length, run)
    out.write_text(json.dumps(result))


def dense_params() -> int:
    """Parameters of the dense model (embeddings tied):
    6*N FLOPs per trained token is the MFU convention."""
    from transformers import AutoConfig

    from raftkit.models import resolve_path

    c = AutoConfig.from_pretrained(resolve_path(MODEL))
    h, kv = c.hidden_size, c.hidden_size * c.num_key_value_heads // c.num_attention_heads
    return (
        c.num_hidden_layers * (2 * h * h + 2 * h * kv + 3 * h * c.intermediate_size)
        + c.vocab_size * h
    )


def measure(args) -> dict:
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    make_data(tmp / "raft.jsonl")
    runs = {}
    for name in args.only or RUNS:
        out = tmp / f"{name}.json"
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--data",
            str(tmp / "raft.jsonl"),
            "--out",
            str(out),
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--max-length",
            str(args.max_length),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        runs[name] = json.loads(out.read_text())
        r = runs[name]
        print(
            f"{name}: {r['tokens']} tokens in {r['train_s']:.1f}s = "
            f"{r['tokens'] / r['train_s']:.1f} tok/s, peak {r['peak_mem_mb']:.0f} MiB",
            file=sys.stderr,
        )
    peaks = (
        {} if torch.cuda.is_available() else {d: matmul_peak(d) for d in ("float32", "bfloat16")}
    )
    return {
        "steps": args.steps,
        "batch": args.batch,
        "max_length": args.max_length,
        "params": dense_params(),
        "load_before": os.getloadavg()[0],
        "matmul_tflops": peaks,
        "runs": runs,
    }


def datasheet_peak(gpu: str | None) -> float | None:
    """The dense bf16 TFLOP/s of a GPU by its name, when GPU_PEAK_BF16_TFLOPS knows it."""
    return next((v for k, v in GPU_PEAK_BF16_TFLOPS.items() if k in (gpu or "")), None)


def _peak(d: dict) -> tuple[float | None, str]:
    """(bf16 peak TFLOP/s, what it is) for MFU:
    the GPU's datasheet figure, or this CPU's measured matmul."""
    gpu = d["machine"]["gpu"]
    if gpu:
        peak = datasheet_peak(gpu)
        return peak, f"the {gpu}'s dense bf16 peak ({peak} TFLOP/s)"
    peak = d["matmul_tflops"].get("bfloat16")
    return peak, f"this CPU's measured bf16 matmul peak ({peak:.2f} TFLOP/s for 2048x2048)"


def runs_table(d: dict, peaks: dict[str, float | None], memory: str = "peak MiB") -> str:
    """The table of d's runs: throughput, memory, model FLOP/s and one MFU column per entry of
    `peaks` (column label -> bf16 peak TFLOP/s; None: n/a)."""
    rows = []
    for name, r in d["runs"].items():
        tps = r["tokens"] / r["train_s"]
        flops = 6 * d["params"] * tps
        rows.append(
            [
                name,
                RUNS[name][0],
                r["precision"],
                r["tokens"],
                round(r["train_s"], 1),
                round(r["first_step_s"], 1) if r.get("first_step_s") else "n/a",
                round(tps, 1),
                round(r["tokens"] / r["cpu_s"], 1),
                round(r["peak_mem_mb"]),
                f"{r['trainable']:,}",
                f"{flops / 1e12:.3f}",
                *[f"{100 * flops / (p * 1e12):.1f}%" if p else "n/a" for p in peaks.values()],
                f"{r['first_loss']:.3f} -> {r['final_loss']:.3f}",
            ]
        )
    headers = ["config", "what", "precision", "tokens", "train s", "first step s", "tokens/s"]
    headers += ["tokens/CPU-s"]
    headers += [memory, "trainable params", "model TFLOP/s", *peaks, "loss"]
    return table(headers, rows)


def _ratio(d: dict, a: str, b: str) -> tuple[float, float, float]:
    """(tokens/s ratio, tokens per CPU-s ratio, final-loss relative difference)
    of run a over run b."""
    ra, rb = d["runs"][a], d["runs"][b]
    speed = (ra["tokens"] / ra["train_s"]) / (rb["tokens"] / rb["train_s"])
    per_cpu = (ra["tokens"] / ra["cpu_s"]) / (rb["tokens"] / rb["cpu_s"])
    return speed, per_cpu, abs(ra["final_loss"] - rb["final_loss"]) / rb["final_loss"]


def _after_first_step(r: dict) -> float | None:
    """Tokens/s from the second step on (without the first step's one-off work)."""
    if not r.get("first_step_s"):
        return None
    return (r["tokens"] - r["first_step_tokens"]) / (r["train_s"] - r["first_step_s"])


def render(d: dict) -> str:
    runs, m = d["runs"], d["machine"]
    peak, peak_text = _peak(d)
    parts = [
        "## Training (`benchmarks/train.py`)",
        f"Machine: {describe(m)}. Model {MODEL} ({d['params'] / 1e6:.0f}M dense parameters). "
        f"{d['steps']} optimizer steps, batch {d['batch']}, max_length {d['max_length']}, LoRA "
        "r=16 on all linear layers; data: 64 RAFT-style prompt-completion rows from "
        "corpora/demo/v1 with 1-4 documents each. Each configuration ran alone, one after "
        f"another. Command: `{d['command']}`.",
        runs_table(d, {"MFU": peak}),
    ]
    if d["matmul_tflops"]:
        t = d["matmul_tflops"]
        parts.append(
            "Model FLOP/s count 6N per trained token (the MFU convention; a LoRA step skips the "
            f"frozen weights' gradients, about 4N of real work). MFU is against {peak_text}; a "
            f"float32 matmul peaks at {t['float32']:.2f} TFLOP/s here, "
            f"{t['bfloat16'] / t['float32']:.1f}x less."
        )
    for auto, fp32, what in (
        ("raftkit-lora", "raftkit-lora-fp32", "SFT-LoRA"),
        ("raftkit-full", "raftkit-full-fp32", "full fine-tuning"),
    ):
        if {auto, fp32} <= runs.keys():
            speed, per_cpu, loss = _ratio(d, auto, fp32)
            later = [_after_first_step(runs[n]) for n in (auto, fp32)]
            steady = (
                f" From the second step on (without compiling the fused kernels): "
                f"{later[0] / later[1]:.2f}x ({later[0]:.0f} against {later[1]:.0f} tokens/s)."
                if all(later)
                else ""
            )
            parts.append(
                f"**Runtime auto ({runs[auto]['precision']}) against float32, {what}: "
                f"{speed:.2f}x the tokens/s ({per_cpu:.2f}x per CPU-second), final loss "
                f"{100 * loss:.1f}% apart.**{steady}"
            )
    if {"raftkit-lora", "trl-defaults-lora"} <= runs.keys():
        speed, per_cpu, _ = _ratio(d, "raftkit-lora", "trl-defaults-lora")
        mem = runs["raftkit-lora"]["peak_mem_mb"] / runs["trl-defaults-lora"]["peak_mem_mb"]
        parts.append(
            f"**raftkit against plain TRL defaults (SFT-LoRA): {speed:.2f}x the tokens/s "
            f"({per_cpu:.2f}x per CPU-second) at {mem:.2f}x the peak memory.** Both compute the "
            "loss on the answer only. raftkit packs whole examples best-fit into max_length rows "
            "(padding-free) and leaves gradient checkpointing off for a model this small; on a "
            "CPU it feeds one packed row per micro-batch, runs attention one packed example at a "
            "time (raftkit/train/cpu/packed_attention.py), runs the LM head only before answer "
            "tokens, keeps LoRA dropout off (its masks were 23% of a step) and the frozen base in "
            "bf16. TRL's defaults pad each batch to its longest row and recompute activations."
        )
        parts.append(
            "Under bf16 autocast raftkit adds each LoRA delta to a float32 copy of the frozen "
            "layer's bf16 output and carries the sum in float32 (added in bf16, deltas far below "
            "the frozen output round away and the adapters learn less per step): that is what "
            "keeps the bf16 loss beside float32's. On CPU those sums, and the SwiGLU MLP's "
            "sums and activation, are torch.compile'd fused kernels "
            "(raftkit/train/cpu/lora_layers.py), in both dtypes; compiling them is most of each "
            "raftkit run's first step (from torch's on-disk cache here; the first compile on a "
            "machine adds ~9 s while torch probes the CPU). Attention over packed examples "
            "runs the CPU's bf16 flash kernel forward and its float32 kernel backward (the bf16 "
            "backward was the slower, ~5x its forward); attention still gains less from bf16 than "
            "the matmuls do."
        )
    cores = [r["cpu_s"] / r["train_s"] for r in runs.values()]
    parts.append(
        f"Each training loop kept {min(cores):.1f}-{max(cores):.1f} of the machine's {m['cores']} "
        f"cores busy (1-minute load average {d['load_before']:.1f} before the first run); tokens "
        "per CPU-second is the steadier figure when other work shares the cores."
    )
    if not m["gpu"]:
        parts.append(
            "No GPU was available to this measurement: the CUDA rows (and a GPU MFU) come from a "
            "run on a lent GPU machine when there is one (see the GPU section below, if present)."
        )
    return "\n\n".join(parts)


def add_args(parser) -> None:
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument(
        "--only", nargs="*", choices=list(RUNS), help="run only these configurations"
    )
    parser.add_argument("--worker", help=argparse_suppress())
    parser.add_argument("--data", help=argparse_suppress())
    parser.add_argument("--out", help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    if "--worker" in sys.argv:
        import argparse

        p = argparse.ArgumentParser()
        for flag, kind in (
            ("--worker", str),
            ("--data", Path),
            ("--out", Path),
            ("--steps", int),
            ("--batch", int),
            ("--max-length", int),
        ):
            p.add_argument(flag, type=kind)
        a = p.parse_args()
        worker(a.worker, a.data, a.steps, a.batch, a.max_length, a.out)
    else:
        bench_main("train", __doc__, measure, render, add_args)
