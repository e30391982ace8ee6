"""What a training stage is: its recipe section, the columns it trains on, its checks and its
trainer.

Each stage is one module in `raftkit/train/stages/` defining `STAGE = Stage(...)`; the registry
finds them there, and `TrainConfig` gains the stage's section and its name among the allowed `stage`
values. Adding a stage is one new module plus its recipes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftkit.config import Section
    from raftkit.train.config import TrainConfig


def _no_problems(cfg) -> list[str]:
    return []


def _no_checks(cfg) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    name: str
    # where it sits in the pipeline (sft before dpo ...): the order of `stage` values in messages
    order: int
    columns: tuple[tuple[str, ...], ...]  # the column sets it can train on, in order of preference
    train: Callable[[TrainConfig, bool], dict]  # (cfg, resume) -> the run.json summary
    section: type[Section] | None = None  # its recipe section, `cfg.<name>`
    extra_columns: tuple[
        str, ...
    ] = ()  # kept when the dataset has them (e.g. rewards read `answer`)
    column_hint: str = ""  # said when the columns are missing
    problems: Callable[[TrainConfig], list[str]] = _no_problems  # cross-field config rules
    preflight: Callable[[TrainConfig], None] = (
        _no_checks  # checks that read files; raise RaftkitError
    )
