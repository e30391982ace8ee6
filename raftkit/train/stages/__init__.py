"""The training stages, one module each (see raftkit/train/stage.py); found by listing this
package."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from raftkit.train.stage import Stage


@lru_cache(maxsize=1)
def registry() -> dict[str, Stage]:
    """{name: Stage} of every module here, in pipeline order."""
    found = [
        importlib.import_module(f"{__name__}.{m.name}").STAGE
        for m in pkgutil.iter_modules(__path__)
    ]
    return {s.name: s for s in sorted(found, key=lambda s: s.order)}
