"""A `raftkit train` run folder as the rest of raftkit reads it: RUN/run.json (what was trained,
how, and what the run carries: its evidence gate and verifier) and RUN/model (weights or adapter).

The one reader of run.json: `raftkit train` writes it (raftkit/train/runfolder.py); `ask`,
`compare`, `export` and an RLHF run's reward model read it through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from raftkit.errors import RaftkitError

INFO = "run.json"
MODEL = "model"


@dataclass(frozen=True)
class RunFolder:
    path: Path
    info: dict  # run.json as written by `raftkit train`

    @classmethod
    def find(cls, path: str | Path) -> RunFolder | None:
        """The run at `path`, or None when it holds no run.json (a verifier run has no model/).
        Raises RaftkitError when its run.json cannot be read."""
        path = Path(path).expanduser()
        if not (path / INFO).is_file():
            return None
        try:
            return cls(path, json.loads((path / INFO).read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise RaftkitError(f"{path / INFO}: unreadable ({e})") from None

    @classmethod
    def open(cls, path: str | Path, what: str, stage: str | None = None) -> RunFolder:
        """The run at `path` with its weights; RaftkitError (naming `what`) when it is not a
        finished run, or not one of `stage`."""
        run = cls.find(path)
        if run is None or not run.model_dir.is_dir():
            where = f"{what} {path}" if what else str(path)
            raise RaftkitError(
                f"{where}: not a finished `raftkit train` run (needs run.json and model/)"
            )
        if stage and run.stage != stage:
            raise RaftkitError(f"{what} {path}: is a '{run.stage}' run, not a '{stage}' run")
        return run

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL

    @property
    def stage(self) -> str | None:
        return self.info.get("stage")

    @property
    def evidence_gate(self) -> dict | None:
        """The cosine gate the run carries from its build (None when it carries none)."""
        return self.info.get("evidence_gate")

    @property
    def verifier(self) -> str | None:
        """The verifier run folder the run carries (None when it carries none)."""
        return self.info.get("verifier") or None

    def essentials(self) -> dict:
        """What identifies the run in a report: stage, method, base model, dataset and steps."""
        keys = ("stage", "method", "base_model", "dataset", "steps")
        return {k: self.info[k] for k in keys if k in self.info}
