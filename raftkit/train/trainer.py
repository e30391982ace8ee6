"""A stage's TRL trainer: its arguments from the recipe and runtime, the data and model put in it,
and the callback that keeps RUN/metrics.jsonl current."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from raftkit import files
from raftkit.train.data import load_data
from raftkit.train.model import load_model, runtime_of

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


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
        # every trainable weight of a raftkit stage (adapters, a full model, a reward head) takes
        # part in every step: DDP's search for unused ones would cost a graph walk per step and
        # print a warning on every rank of a multi-process run
        ddp_find_unused_parameters=False,
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
