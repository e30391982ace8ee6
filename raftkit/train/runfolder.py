"""The run folder: resuming from its last complete checkpoint, training, and the record a run leaves
(RUN/model, metrics.jsonl, loss.png and the run.json summary)."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

from raftkit import files, models, outputs
from raftkit.train.model import runtime_of

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


def last_checkpoint(run_dir: str | Path) -> str | None:
    """The newest complete checkpoint-* folder of a run, else None.

    The Trainer writes a checkpoint's trainer_state.json last, after the weights, optimizer and RNG
    states: a folder without a readable one is a save that a kill interrupted. It is passed over
    (the resumed run trains those steps again and saves over it), not deleted.
    """
    run = Path(run_dir)
    steps = []
    for folder in run.glob("checkpoint-*") if run.is_dir() else []:
        step = folder.name.removeprefix("checkpoint-")
        if step.isdigit() and folder.is_dir():
            steps.append((int(step), folder))
    for _, folder in sorted(steps, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return str(folder)
    return None


def peak_memory_mb(cuda: bool) -> float:
    """Peak CUDA memory allocated when on CUDA, else the process's peak resident set size, in
    MiB."""
    if cuda:
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used: steadier than wall time on a
    shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def plot_loss(history: list[dict], out: Path) -> None:
    """RUN/loss.png: training (and eval) loss against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, label in (("loss", "train"), ("eval_loss", "eval")):
        pts = [(h["step"], h[key]) for h in history if key in h]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)


def _quiet_screen(trainer) -> None:
    """The Trainer's screen as raftkit's: one progress bar with the loss beside it, never the
    per-step log dicts the Trainer prints (they are in metrics.jsonl); no bar at all under
    RAFTKIT_QUIET=1."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_loss_bar())


def _loss_bar():
    """ProgressCallback, showing the latest loss on its bar instead of printing each log dict."""
    from transformers.trainer_callback import ProgressCallback

    class LossBarCallback(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            bar = getattr(self, "training_bar", None)
            if state.is_world_process_zero and bar is not None and logs and "loss" in logs:
                bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

    return LossBarCallback


def run_training(
    trainer, cfg: TrainConfig, tok, base: str, resume: bool, examples: int = 0
) -> dict:
    """Train, then write RUN/model, metrics.jsonl, loss.png and run.json; returns the run.json
    summary."""
    run, rt = Path(cfg.output_dir), runtime_of(cfg)
    if rt.cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    _quiet_screen(trainer)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    checkpoint = last_checkpoint(run) if resume else None
    result = checkpoint and _restore_finished(trainer, checkpoint)
    if not result:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    _save_model(trainer, run / "model", tok, base)
    summary = _summary(trainer, cfg, base, result, wall, cpu, examples, resume)
    if trainer.is_world_process_zero():
        files.write_jsonl(run / "metrics.jsonl", trainer.state.log_history)
        plot_loss(trainer.state.log_history, run / "loss.png")
        files.write_json(run / "run.json", summary)
    return summary


def _restore_finished(trainer, checkpoint: str):
    """The finished run of `checkpoint` (a kill came after its last step, before run.json), loaded
    without training; None when the checkpoint is not at max_steps. Trainer.train resumed at
    max_steps trains one step more (measured: checkpoint-13 of a 12-step run), so the resumed
    output would differ from the uninterrupted one."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    if not 0 < trainer.args.max_steps <= state.global_step:
        return None
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return TrainOutput(state.global_step, losses[-1] if losses else 0.0, {})


def _save_model(trainer, model_dir: Path, tok, base: str) -> None:
    if (
        trainer.args.world_size > 1
    ):  # every rank takes part: FSDP/DeepSpeed gather the sharded weights
        trainer.save_model(str(model_dir))
        if trainer.is_world_process_zero():
            _finish_model_dir(model_dir, tok, base)
        return
    with outputs.staged(model_dir) as tmp:
        trainer.save_model(str(tmp))
        _finish_model_dir(tmp, tok, base)


def _summary(
    trainer,
    cfg: TrainConfig,
    base: str,
    result,
    wall: float,
    cpu: float,
    examples: int,
    resume: bool,
) -> dict:
    from raftkit.retrieval import gate

    state, rt = trainer.state, runtime_of(cfg)
    history = state.log_history
    tokens = max(
        [h.get("num_input_tokens_seen", 0) for h in history]
        + [h.get("num_tokens", 0) for h in history]
        + [state.num_input_tokens_seen or 0]
    )
    train_s = result.metrics.get("train_runtime", wall)
    losses = [h["loss"] for h in history if "loss" in h]
    return {
        "stage": cfg.stage,
        "method": cfg.method,
        "base_model": base,
        "dataset": cfg.data.path,
        "steps": state.global_step,
        "examples": examples or getattr(trainer, "raftkit_examples", len(trainer.train_dataset)),
        "tokens": int(tokens),
        "tokens_per_s": round(tokens / train_s, 1) if train_s else 0.0,
        "peak_mem_mb": round(peak_memory_mb(rt.cuda), 1),
        "wall_s": round(wall, 2),
        "train_runtime_s": round(train_s, 2),
        "train_cpu_s": round(cpu, 2),
        "device": rt.device,
        "dtype": rt.dtype,
        "precision": _precision(cfg, trainer),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "resumed": bool(resume),
        "processes": trainer.args.world_size,  # > 1: a launched data-parallel (or sharded) run
        "evidence_gate": evidence_gate(cfg),
        "verifier": cfg.evidence_verifier or gate.carried_verifier(cfg.model),
    }


def evidence_gate(cfg: TrainConfig) -> dict | None:
    """The evidence gate this run carries (raftkit.retrieval.gate): its build-dataset folder's, or
    else the one of the run it starts from."""
    from raftkit.retrieval.gate import carried

    manifest = Path(cfg.data.path).expanduser() / "manifest.json"
    if manifest.is_file():
        summary = json.loads(manifest.read_text(encoding="utf-8")).get("summary", {})
        if summary.get("evidence_gate"):
            return summary["evidence_gate"]
    return carried(cfg.model)


def _precision(cfg: TrainConfig, trainer) -> str:
    """run.json's precision: the autocast dtype and the dtypes of trained and frozen weights."""
    rt = runtime_of(cfg)
    if rt.dtype == "float32":
        return "float32"
    trained = {str(p.dtype).split(".")[-1] for p in trainer.model.parameters() if p.requires_grad}
    frozen = {
        str(p.dtype).split(".")[-1] for p in trainer.model.parameters() if not p.requires_grad
    }
    weights = f"trained weights {'/'.join(sorted(trained))}"
    if frozen:
        weights += f", frozen weights {'/'.join(sorted(frozen))}"
    return f"{rt.dtype} autocast; {weights}"


def _finish_model_dir(model_dir: Path, tok, base: str) -> None:
    """Add the tokenizer; point an adapter at the user-facing base name, resolvable on any
    machine."""
    tok.save_pretrained(str(model_dir))
    adapter = model_dir / models.ADAPTER
    if adapter.is_file():
        acfg = json.loads(adapter.read_text())
        acfg["base_model_name_or_path"] = base
        adapter.write_text(json.dumps(acfg, indent=2))
