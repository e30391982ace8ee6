"""What every stage shares: the dataset (opened and checked before any model), the model (full, LoRA
or 4-bit QLoRA from the same code path), TRL arguments for the runtime, and the run folder
record."""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING

from raftkit import files, hub, models, outputs
from raftkit.errors import RaftkitError
from raftkit.train import lora_layers

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


def runtime_of(cfg: TrainConfig) -> models.Runtime:
    return models.runtime(cfg.runtime)


# ----------------------------------------------------------------------------- data
def _json_file(path: str) -> bool:
    """Whether `path` is a .jsonl/.json file (read as one train split)."""
    return path.endswith((".jsonl", ".json")) and Path(path).is_file()


def _open(path: str, what: str):
    """A DatasetDict from a build-dataset folder, a save_to_disk folder, a .jsonl file or a Hub
    id."""
    import datasets

    datasets.disable_progress_bars()
    p = Path(path).expanduser()
    if _json_file(path):
        return datasets.DatasetDict({"train": _read_json_split(path, what)})
    if p.is_dir():
        target = p / "dataset" if (p / "dataset").is_dir() else p
        try:
            ds = datasets.load_from_disk(str(target))
        except FileNotFoundError:
            raise RaftkitError(
                f"{what} {path}: not a build-dataset or save_to_disk folder"
            ) from None
        return ds if isinstance(ds, datasets.DatasetDict) else datasets.DatasetDict({"train": ds})
    if hub.explicit_id(path) or hub.looks_like_id(path):
        return _hub_dataset(path, what)
    raise RaftkitError(
        f"{what} {path}: not found (a build-dataset folder, a .jsonl file, or hf://org/name "
        f"for a Hub dataset)"
    )


def _hub_dataset(path: str, what: str):
    import datasets

    local = hub.snapshot(path, kind="dataset", what=what)  # the HF cache, or a download for hf://
    try:
        return datasets.load_dataset(local)
    except Exception as e:
        raise RaftkitError(
            f"{what} {path}: cannot be read as a dataset ({type(e).__name__})"
        ) from None


def _read_json_split(path: str, what: str):
    """One .jsonl file as a Dataset; a file that datasets cannot read is one clear error."""
    import datasets

    try:
        return datasets.load_dataset("json", data_files=path, split="train")
    except Exception as e:
        cause = str(e.__cause__ or e).splitlines()[0][:160]
        raise RaftkitError(f"{what} {path}: cannot be read as JSON lines ({cause})") from None


def pick_columns(stage: str, have: list[str], where: str) -> list[str]:
    """The first column set of `stage` that `have` covers; else RaftkitError naming what is
    missing."""
    from raftkit.train.stages import registry

    s = registry()[stage]
    for option in s.columns:
        if all(c in have for c in option):
            return list(option) + [c for c in s.extra_columns if c in have]
    wanted = " or ".join("+".join(o) for o in s.columns)
    missing = [c for c in s.columns[0] if c not in have]
    hint = f" ({s.column_hint})" if s.column_hint else ""
    raise RaftkitError(
        f"dataset {where} lacks column(s) {', '.join(missing)} needed by stage '{stage}'{hint}: "
        f"it needs {wanted}; it has {', '.join(have) or 'none'}"
    )


def load_data(cfg: TrainConfig):
    """(train, eval or None) datasets holding only the columns `cfg.stage` needs; raises
    RaftkitError naming missing ones."""
    d = cfg.data
    ds = _open(d.path, "data.path")
    split = "train" if _json_file(d.path) else d.train_split
    if split not in ds:
        raise RaftkitError(f"data.path {d.path}: no split '{split}' (has: {', '.join(ds)})")
    train = ds[split]
    columns = pick_columns(cfg.stage, train.column_names, d.path)
    evals = _eval_split(cfg, ds, columns)
    if d.max_samples:
        train = train.select(range(min(d.max_samples, len(train))))
        evals = evals.select(range(min(d.max_samples, len(evals)))) if evals is not None else None
    if len(train) == 0:
        raise RaftkitError(f"data.path {d.path}: the '{split}' split is empty")
    train = train.select_columns(columns)
    return (_mixed(train, d.mix, columns) if d.mix else train), evals


def _eval_split(cfg: TrainConfig, ds, columns: list[str]):
    """The eval split (data.eval_path, else the dataset's eval split) with the train columns, else
    None."""
    d = cfg.data
    if d.eval_path:
        if not Path(d.eval_path).is_file():
            raise RaftkitError(f"data.eval_path {d.eval_path}: file not found")
        evals = _read_json_split(d.eval_path, "data.eval_path")
        missing = [c for c in columns if c not in evals.column_names]
        if missing:
            raise RaftkitError(
                f"data.eval_path {d.eval_path}: missing column(s) {', '.join(missing)} that "
                f"data.path has"
            )
    else:
        evals = ds.get(d.eval_split) if not _json_file(d.path) else None
        if evals is None or any(c not in evals.column_names for c in columns):
            return None
    return evals.select_columns(columns) if len(evals) else None


def _mixed(train, paths: list[str], columns: list[str]):
    """`train` with the train split of each of `paths` appended (same columns, cast to train's
    types)."""
    from datasets import concatenate_datasets

    parts = [train]
    for path in paths:
        ds = _open(path, "data.mix")
        if "train" not in ds:
            raise RaftkitError(f"data.mix {path}: no split 'train' (has: {', '.join(ds)})")
        missing = [c for c in columns if c not in ds["train"].column_names]
        if missing:
            raise RaftkitError(
                f"data.mix {path}: missing column(s) {', '.join(missing)} that data.path has"
            )
        parts.append(ds["train"].select_columns(columns).cast(train.features))
    return concatenate_datasets(parts)


# ----------------------------------------------------------------------------- model
def load_model(cfg: TrainConfig, head: str = "causal"):
    """(model, tokenizer, base name): the model ready for the trainer (PEFT-wrapped for lora/qlora).

    A previous LoRA run as `model` is continued (its adapter trained further) for lora/qlora and
    merged first for full. `head` is 'causal' or 'score' (a 1-label sequence-classification head).
    Precision (`weight_dtype`): with a bf16 runtime the frozen base of a LoRA run loads in bf16
    (its float32 adapters stay the master weights); full fine-tuning keeps float32 weights under
    autocast.
    """
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BitsAndBytesConfig,
    )

    ref = models.resolve(cfg.model)
    tok = models.load_tokenizer(ref.base, padding_side="right")  # generation (GRPO) sets its own
    rt = runtime_of(cfg)
    dtype = getattr(torch, weight_dtype(cfg, head))
    kwargs = {}
    if cfg.quantized:
        compute = (
            rt.torch_dtype
            if cfg.quant.compute_dtype == "auto"
            else getattr(torch, cfg.quant.compute_dtype)
        )
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quant.quant_type,
            bnb_4bit_use_double_quant=cfg.quant.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
        # one whole copy per rank: each accelerate rank sits on its LOCAL_RANK GPU
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0")) if rt.cuda else "cpu"}
    cls = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    if head == "score":
        kwargs.update(num_labels=1, pad_token_id=tok.pad_token_id)
    model = models.load_pretrained(ref, cls, dtype, merge=cfg.method == "full", **kwargs)
    model.config.pad_token_id = tok.pad_token_id
    if cfg.method == "full":
        return model, tok, ref.base
    return _with_adapter(cfg, model, ref, head), tok, ref.base


def weight_dtype(cfg: TrainConfig, head: str = "causal") -> str:
    """The dtype the model's weights load in for training (see load_model).

    Weights that train whole (full fine-tuning, a score head) are the optimizer's master copy:
    float32 under autocast on CUDA as on a CPU, since a bf16 weight rounds away updates below 1/256
    of itself.
    A frozen LoRA base loads in the runtime dtype (peft keeps the adapters float32): on a CPU this
    skips autocast's cast of every weight at every micro-batch (frozen weights are not in its
    cache), measured 1.1x a float32 base.
    """
    trains_whole = cfg.method == "full" or head != "causal"
    return "float32" if trains_whole else runtime_of(cfg).dtype


def _with_adapter(cfg: TrainConfig, model, ref: models.ModelRef, head: str):
    from peft import (
        LoraConfig,
        PeftModel,
        TaskType,
        get_peft_model,
        prepare_model_for_kbit_training,
    )

    if cfg.quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.optim.gradient_checkpointing
        )
    if ref.adapter:
        return lora_layers.prepare(PeftModel.from_pretrained(model, ref.adapter, is_trainable=True))
    targets = cfg.lora.target_modules
    lcfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type=TaskType.CAUSAL_LM if head == "causal" else TaskType.SEQ_CLS,
    )
    return lora_layers.prepare(get_peft_model(model, lcfg))


# ----------------------------------------------------------------------------- trainer arguments
def trainer_args(cfg: TrainConfig, config_cls, has_eval: bool, **extra):
    """A TRL `config_cls` (SFTConfig, DPOConfig ...) from the recipe; mixed precision from the
    runtime."""
    o, rt = cfg.optim, runtime_of(cfg)
    eval_strategy = "steps" if has_eval and o.eval_steps else ("epoch" if has_eval else "no")
    args = dict(
        output_dir=cfg.output_dir,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=not rt.cuda,
        bf16=rt.dtype == "bfloat16",
        fp16=rt.dtype == "float16",
        learning_rate=o.lr,
        num_train_epochs=o.epochs,
        max_steps=o.max_steps or -1,
        per_device_train_batch_size=o.batch_size,
        per_device_eval_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum,
        warmup_steps=o.warmup,
        lr_scheduler_type=o.scheduler,
        weight_decay=o.weight_decay,
        max_grad_norm=o.max_grad_norm,
        activation_checkpointing=o.gradient_checkpointing,
        logging_steps=o.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        eval_strategy=eval_strategy,
        eval_steps=o.eval_steps or None,
        dataloader_num_workers=o.dataloader_workers,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=os.environ.get("RAFTKIT_QUIET") == "1",
        optim="paged_adamw_8bit" if cfg.quantized and rt.cuda else "adamw_torch",
    )
    return config_cls(**{**args, **extra})


def build_trainer(
    cfg: TrainConfig,
    trainer_cls,
    config_cls,
    head: str = "causal",
    evaluate: bool = True,
    args: dict | None = None,
    extra=None,
):
    """(trainer, tokenizer, base name): the stage's data and model in a TRL trainer.

    `args` are the stage's own trainer arguments; `extra(model, tok)` returns more trainer keyword
    arguments built from the loaded model (a DPO reference model, RLHF reward functions).
    """
    train, evals = load_data(cfg)
    evals = evals if evaluate else None
    model, tok, base = load_model(cfg, head=head)
    targs = trainer_args(cfg, config_cls, evals is not None, **(args or {}))
    more = extra(model, tok) if extra else {}
    if evaluate:
        more["eval_dataset"] = evals
    trainer = trainer_cls(
        model=model,
        args=targs,
        train_dataset=train,
        processing_class=tok,
        callbacks=[recorder()],
        **more,
    )
    trainer.raftkit_examples = len(train)  # before packing: what run.json counts as examples
    return trainer, tok, base


def recorder():
    """A TrainerCallback that rewrites RUN/metrics.jsonl (atomically) at every log."""
    from transformers import TrainerCallback

    class MetricsRecorder(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:
                files.write_jsonl(Path(args.output_dir) / "metrics.jsonl", state.log_history)

    return MetricsRecorder()


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


# ----------------------------------------------------------------------------- run folder
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
