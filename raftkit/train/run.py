"""`raftkit train`: validate everything (config, run folder, dataset columns, reward model) before any
model is loaded, then hand over to the stage function."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from raftkit import config
from raftkit.errors import RaftkitError
from raftkit.train.config import TrainConfig

LAUNCHED_ENV = "RAFTKIT_LAUNCHED"  # set by the accelerate launcher for the ranks it starts


def load_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    """The resolved TrainConfig (defaults < YAML < --set); raises ConfigError listing every problem."""
    return config.load(TrainConfig, path, overrides)


def check_run_dir(cfg: TrainConfig, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber a run without --overwrite, and --resume without a checkpoint."""
    from raftkit.train.common import last_checkpoint

    run = Path(cfg.output_dir)
    if resume and overwrite:
        raise RaftkitError("--resume and --overwrite contradict each other: pick one")
    if resume:
        if not last_checkpoint(run):
            raise RaftkitError(f"--resume: no checkpoint-* folder in {run} to resume from")
        return
    if run.exists() and any(run.iterdir()) and not overwrite:
        raise RaftkitError(f"run folder {run} already exists: pass --overwrite to replace it or --resume to continue")


def check_reward_model(cfg: TrainConfig) -> None:
    """An RLHF run needs a finished reward run (run.json with stage 'reward' and a model folder)."""
    import json

    path = Path(cfg.rlhf.reward_model)
    info = path / "run.json"
    if not info.is_file() or not (path / "model").is_dir():
        raise RaftkitError(f"rlhf.reward_model {path}: not a finished `raftkit train` run (no run.json + model/)")
    stage = json.loads(info.read_text()).get("stage")
    if stage != "reward":
        raise RaftkitError(f"rlhf.reward_model {path}: is a '{stage}' run, not a 'reward' run")


def check_model(cfg: TrainConfig) -> None:
    """The model name resolves, and a 4-bit base is not asked to merge a previous adapter."""
    from raftkit.train.common import base_and_adapter

    _, adapter = base_and_adapter(cfg.model)
    if adapter and cfg.stage == "reward":
        raise RaftkitError(f"model {cfg.model}: a reward model starts from a base model, not a LoRA run; "
                           f"`raftkit export {cfg.model} --merge --out DIR` and use DIR")


def preflight(cfg: TrainConfig, overwrite: bool = False, resume: bool = False) -> None:
    """Every check that needs no model: run folder, model name, reward run, dataset columns. Raises RaftkitError."""
    from raftkit.train.common import load_data

    if not launched():  # under accelerate the launcher checked the folder; ranks would race here
        check_run_dir(cfg, overwrite, resume)
    check_model(cfg)
    if cfg.stage == "rlhf":
        check_reward_model(cfg)
    load_data(cfg)  # column errors now, before a model is loaded or anything is written


def launched() -> bool:
    """Whether this process is one of the ranks `raftkit train --launcher accelerate` started."""
    return os.environ.get(LAUNCHED_ENV) == "1"


def train(cfg: TrainConfig, overwrite: bool = False, resume: bool = False) -> dict:
    """Run stage `cfg.stage` after every check; returns the run.json summary. Raises RaftkitError."""
    from raftkit.ui import say

    preflight(cfg, overwrite, resume)
    run = Path(cfg.output_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        say(f"training: stage {cfg.stage}, method {cfg.method}, model {cfg.model} -> {cfg.output_dir}")
        if overwrite and run.exists() and not launched():
            shutil.rmtree(run)
        run.mkdir(parents=True, exist_ok=True)
        config.save_resolved(cfg, run)
    from transformers import set_seed

    # before the stage builds its model: LoRA A matrices and a reward head are drawn there, ahead of the Trainer's
    # own seeding; unseeded, two runs of one recipe differed by up to 0.09 in adapter weights after 6 steps
    set_seed(cfg.seed)
    if cfg.stage == "sft":
        from raftkit.train.sft import train_sft as fn
    elif cfg.stage == "dpo":
        from raftkit.train.dpo import train_dpo as fn
    elif cfg.stage == "reward":
        from raftkit.train.reward import train_reward as fn
    else:
        from raftkit.train.rlhf import train_rlhf as fn
    return fn(cfg, resume=resume)


def command(args) -> None:
    """CLI handler of `raftkit train`."""
    import subprocess
    import warnings

    from raftkit.ui import say

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers v6 renames, not ours to fix
    cfg = load_config(args.config, args.set)
    if args.launcher == "accelerate":
        from raftkit.train.launch import launch_command

        cmd = launch_command(args)
        preflight(cfg, args.overwrite, args.resume)
        if args.overwrite and Path(cfg.output_dir).exists():  # once here, not once per rank
            shutil.rmtree(cfg.output_dir)
        say("launching: " + " ".join(cmd))
        rc = subprocess.call(cmd, env={**os.environ, LAUNCHED_ENV: "1"})
        if rc:
            raise RaftkitError(f"accelerate launch exited with code {rc}")
        return
    s = train(cfg, overwrite=args.overwrite, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {cfg.stage}/{cfg.method} in {s['wall_s']:.1f}s: {s['steps']} steps, {s['tokens']} tokens "
              f"({s['tokens_per_s']:.0f} tok/s), peak {s['peak_mem_mb']:.0f} MiB, loss {s['first_loss']:.3g} -> "
              f"{s['final_loss']:.3g}; run folder {cfg.output_dir}")
