"""Console output: status lines on stderr (stdout stays clean for --json), tqdm bars with ETA."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, optional-kernel notices) off the user's screen."""
    import logging

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # bitsandbytes would fetch an optional CPU kernel from the Hub; we never download at run time
    # (offline, the `kernels` package says so on every command).
    for name in ("bitsandbytes", "kernels", "pypdf", "sentence_transformers", "httpx", "ragas"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # peft asks the deprecated name when it loads an adapter; the notice is for peft, not the user.
    warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)


def say(message: str) -> None:
    """One status line on stderr."""
    print(message, file=sys.stderr, flush=True)


def progress(
    items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0
) -> Iterable[T]:
    """A tqdm bar (count, rate, ETA) on stderr; silent when RAFTKIT_QUIET=1."""
    from tqdm.auto import tqdm

    return tqdm(
        items,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=os.environ.get("RAFTKIT_QUIET") == "1",
    )
