"""The metrics of the registry (raftkit/compare/metrics.py) computed over a system's rows, each with
a bootstrap interval.

Intervals are percentile bootstraps over questions with a fixed seed. Paired differences resample
the questions two systems share, so both systems are measured on the same draw each time.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from raftkit.compare.metrics import METRICS, REGISTRY, Metric
from raftkit.compare.scoring import ScoredRow


@dataclass
class Stat:
    value: float | None
    ci: tuple[float, float] | None
    n: int  # questions that count

    def to_json(self) -> dict:
        return {"value": self.value, "ci": list(self.ci) if self.ci else None, "n": self.n}


def bootstrap_ci(
    values: list[float], samples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean, resampling the values with a fixed seed; None if
    empty."""
    if not len(values):
        return None
    x = np.asarray(values, dtype=np.float64)
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(samples, len(x)))].mean(axis=1)
    return _interval(means, level)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float] | None:
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return None
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(draws, [tail, 100 - tail])
    return float(lo), float(hi)


def per_question(metric: Metric, rows: list[ScoredRow]) -> np.ndarray:
    """The metric's per-question values (NaN where a question does not count)."""
    out = [metric.value(r) for r in rows]
    return np.array([np.nan if v is None else float(v) for v in out], dtype=np.float64)


def _draws(metric: Metric, rows: list[ScoredRow], idx: np.ndarray) -> np.ndarray:
    """The metric on each bootstrap draw of the rows (idx: draws x questions); NaN where nothing
    counts."""
    if metric.combine:
        parts = [_draws(REGISTRY[p], rows, idx) for p in metric.parts]
        with np.errstate(divide="ignore", invalid="ignore"):
            return metric.combine(*parts)
    v = per_question(metric, rows)[idx]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", RuntimeWarning
        )  # a draw where nothing counts is NaN, dropped later
        return np.nanmean(v, axis=-1)


def _point(metric: Metric, rows: list[ScoredRow]) -> tuple[float | None, int]:
    if metric.combine:
        parts = [_point(REGISTRY[p], rows)[0] for p in metric.parts]
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN: reported as none
            value = None if None in parts else float(metric.combine(*map(np.float64, parts)))
        return (None if value is None or not math.isfinite(value) else value), len(rows)
    v = per_question(metric, rows)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else None), len(v)


def summarize(rows: list[ScoredRow], samples: int, seed: int, level: float) -> dict[str, Stat]:
    """{metric: Stat} for one system's rows; metrics that do not apply or count no question are left
    out."""
    out = {}
    for m in METRICS:
        if not m.applies(rows):
            continue
        value, n = _point(m, rows)
        if value is None:
            continue
        if m.combine:
            idx = np.random.default_rng(seed).integers(0, len(rows), size=(samples, len(rows)))
            ci = _interval(_draws(m, rows, idx), level)
        else:
            v = per_question(m, rows)
            ci = bootstrap_ci(list(v[np.isfinite(v)]), samples, seed, level)
        out[m.name] = Stat(value, ci, n)
    return out


def paired(
    rows: list[ScoredRow],
    base: list[ScoredRow],
    names: list[str],
    samples: int,
    seed: int,
    level: float,
) -> dict[str, Stat]:
    """{metric: Stat of (system - baseline)} over the questions both answered, with a paired
    bootstrap."""
    mine = {r.qid: r for r in rows}
    shared = [q.qid for q in base if q.qid in mine]
    a, b = [mine[q] for q in shared], [r for r in base if r.qid in mine]
    idx = np.random.default_rng(seed).integers(0, len(shared), size=(samples, len(shared)))
    out = {}
    for name in names:
        m = REGISTRY[name]
        pa, pb = _point(m, a)[0], _point(m, b)[0]
        if pa is None or pb is None:
            continue
        out[name] = Stat(
            pa - pb, _interval(_draws(m, a, idx) - _draws(m, b, idx), level), len(shared)
        )
    return out
