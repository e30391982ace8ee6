"""What every output records about how it was made: when, with which versions, and stable hashes."""

from __future__ import annotations

import hashlib
import platform
import random
from datetime import UTC, datetime
from importlib import metadata

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "trl",
    "sentence-transformers",
    "faiss-cpu",
    "datasets",
    "ragas",
    "numpy",
)


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def versions() -> dict:
    """Python, raftkit and the versions of the libraries that decide the numbers."""
    from raftkit import __version__

    out = {"python": platform.python_version(), "raftkit": __version__}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def stable_hash(*parts: object, bits: int = 64) -> int:
    """A `bits`-bit hash of `parts` (a multiple of 4) that is the same in every process (unlike
    hash())."""
    return int(hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[: bits // 4], 16)


def rng_for(seed: int, key: str) -> random.Random:
    """A Random seeded by (seed, key): one independent stream per example."""
    return random.Random(stable_hash(seed, key))
