"""`raftkit train`: validate everything (config, run folder, dataset columns, the stage's own
checks) before any model is loaded, then hand over to the stage's trainer.

The run folder is locked while training. `--overwrite` trains in `.RUN.overwrite` beside it and
swaps the new run in only when it finished, so an interrupted rerun leaves the old run as it was; a
folder that is not a raftkit run is never replaced.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from raftkit import config, outputs
from raftkit.errors import RaftkitError
from raftkit.models import rank
from raftkit.train.config import TrainConfig
from raftkit.ui import say

LAUNCHED_ENV = "RAFTKIT_LAUNCHED"  # set by the accelerate launcher for the ranks it starts
# the run folder the user named, set by the launcher when its ranks write a staging folder that it
# swaps in afterwards: what the ranks' lines show
RUN_FOLDER_ENV = "RAFTKIT_RUN_FOLDER"


def load_config(path: str | None, overrides: list[str] | None = None) -> TrainConfig:
    """The resolved TrainConfig (defaults < YAML < --set); raises ConfigError listing every
    problem."""
    return config.load(TrainConfig, path, overrides)


def check_run_dir(cfg: TrainConfig, overwrite: bool, resume: bool) -> None:
    """Refuse to clobber a run without --overwrite, anything but a run with it, and --resume without
    a checkpoint."""
    from raftkit.train.runfolder import last_checkpoint

    run = Path(cfg.output_dir)
    if resume and overwrite:
        raise RaftkitError("--resume and --overwrite contradict each other: pick one")
    if resume:
        if last_checkpoint(run):
            return
        if outputs.kind_of(run) != "run":
            raise RaftkitError(f"--resume: no checkpoint-* folder in {run} to resume from")
        # a run of ours killed before its first complete checkpoint: nothing to lose, start over
        say(f"--resume: {run} has no complete checkpoint yet; training from step 0")
        return
    outputs.check_replaceable(run, "run", "output_dir")
    if run.exists() and not outputs.is_empty_dir(run) and not overwrite:
        raise RaftkitError(
            f"run folder {run} already exists: pass --overwrite to replace it or --resume to "
            "continue"
        )


def preflight(cfg: TrainConfig, overwrite: bool = False, resume: bool = False) -> None:
    """Every check that needs no model: run folder, model name, the stage's checks, dataset
    columns."""
    from raftkit.models import resolve
    from raftkit.train.data import load_data
    from raftkit.train.stages import registry

    if not launched():  # under accelerate the launcher checked the folder; ranks would race here
        check_run_dir(cfg, overwrite, resume)
    resolve(cfg.model)
    if cfg.evidence_verifier:
        from raftkit.retrieval.verifier import read_head

        read_head(cfg.evidence_verifier)  # a run that is not a verifier fails now, not at compare
    registry()[cfg.stage].preflight(cfg)
    load_data(cfg)  # column errors now, before a model is loaded or anything is written


def launched() -> bool:
    """Whether this process is one of the ranks `raftkit train --launcher accelerate` started."""
    return os.environ.get(LAUNCHED_ENV) == "1"


def shown_folder(cfg: TrainConfig) -> str:
    """The run folder to name on screen: the one the user asked for, also in a launched rank that
    writes the launcher's staging folder."""
    return os.environ.get(RUN_FOLDER_ENV) or cfg.output_dir


def workspace(run: Path, overwrite: bool) -> contextlib.AbstractContextManager[Path]:
    """A context yielding the folder to train in (see outputs.writing()): the run folder, or with
    --overwrite of an existing run, a fresh staging folder swapped in when training ends."""
    # preflight's check_run_dir refused what may not be replaced (and lets --resume continue)
    return outputs.writing(run, "run", "run folder", overwrite, checked=True)


def train(cfg: TrainConfig, overwrite: bool = False, resume: bool = False) -> dict:
    """Run stage `cfg.stage` after every check; returns the run.json summary. Raises
    RaftkitError."""
    from transformers import set_seed

    from raftkit.train.stages import registry

    preflight(cfg, overwrite, resume)
    run = Path(cfg.output_dir)
    # launched ranks write the folder they were given: the launcher holds its lock and swaps it in
    with contextlib.nullcontext(run) if launched() else workspace(run, overwrite) as where:
        if rank() == 0:
            say(
                f"training: stage {cfg.stage}, method {cfg.method}, model {cfg.model} -> "
                f"{shown_folder(cfg)}"
            )
            where.mkdir(parents=True, exist_ok=True)
            outputs.mark(where, "run")
            config.save_resolved(cfg, where)
        # before the stage builds its model: LoRA A matrices and a reward head are drawn there,
        # ahead of the Trainer's own seeding; unseeded, two runs of one recipe differed by up to
        # 0.09 in adapter weights
        set_seed(cfg.seed)
        summary = registry()[cfg.stage].train(
            cfg.model_copy(update={"output_dir": str(where)}), resume
        )
    return summary


def launch(args, cfg: TrainConfig) -> None:
    """`--launcher accelerate`: check once, lock the run folder, spawn the ranks, swap the new run
    in."""
    import subprocess

    from raftkit.train.launch import launch_command
    from raftkit.ui import say

    preflight(cfg, args.overwrite, args.resume)
    run = Path(cfg.output_dir)
    with workspace(run, args.overwrite) as where:
        cmd = launch_command(args, output_dir=str(where) if where != run else None)
        say("launching: " + " ".join(cmd))
        rc = subprocess.call(cmd, env={**os.environ, LAUNCHED_ENV: "1", RUN_FOLDER_ENV: str(run)})
        if rc:
            raise RaftkitError(launch_failed(rc, run, where))
        if where != run:  # the ranks wrote the staging path; the run lives at output_dir
            config.save_resolved(cfg, where)


def launch_failed(rc: int, run: Path, where: Path) -> str:
    """The one line a failed launch ends with: what failed, and how to go on from what is left."""
    from raftkit.train.runfolder import last_checkpoint

    what = (
        f"a training process failed (accelerate launch exited with code {rc}; the report above "
        "names the rank)"
    )
    if where != run:
        return f"{what}; {run} is unchanged: rerun the same command to start again"
    checkpoint = last_checkpoint(run)
    if checkpoint:
        return f"{what}; {run} keeps {Path(checkpoint).name}: rerun with --resume to continue"
    return f"{what}; {run} has no checkpoint yet: rerun with --resume to start it again"
