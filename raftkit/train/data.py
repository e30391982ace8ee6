"""The training data of a stage: a build-dataset folder, a .jsonl file or a Hub dataset, opened and
checked (splits, the stage's columns, data.mix) before any model is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from raftkit import hub
from raftkit.errors import RaftkitError

if TYPE_CHECKING:
    from raftkit.train.config import TrainConfig


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
