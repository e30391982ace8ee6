"""The network policy: nothing leaves the machine unless the user names a server or a Hub id.

- Telemetry of the libraries raftkit drives (ragas, huggingface_hub) is off.
- The Hugging Face libraries run offline; a bare `org/name` is looked up on disk and in the local HF
  cache only, so a mistyped local path is never sent to the Hub.
- A download happens only for an explicit Hub id, written `hf://org/name`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from raftkit.errors import RaftkitError

HUB_PREFIX = "hf://"
_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
NO_TELEMETRY = {"HF_HUB_DISABLE_TELEMETRY": "1", "RAGAS_DO_NOT_TRACK": "true", "DO_NOT_TRACK": "1"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def no_telemetry() -> None:
    """Turn the libraries' usage telemetry off (where the user has not decided), before any of them
    reads it."""
    for key, value in NO_TELEMETRY.items():
        os.environ.setdefault(key, value)


def go_offline() -> None:
    """The command line's policy: no telemetry, and the Hugging Face libraries offline (downloads
    only through `snapshot` for an explicit hf:// id). Python callers keep their own environment."""
    no_telemetry()
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)


def explicit_id(name: str) -> str | None:
    """`org/name` of an explicit Hub id (`hf://org/name`), else None."""
    if name.startswith(HUB_PREFIX):
        repo = name[len(HUB_PREFIX) :]
        if not _HF_ID.match(repo):
            raise RaftkitError(f"'{name}' is not a Hub id: write hf://org/name")
        return repo
    return None


def looks_like_id(name: str) -> bool:
    """Whether `name` has the form of a Hub id (org/name) and is not an existing path."""
    return bool(_HF_ID.match(name)) and not Path(name).expanduser().exists()


def snapshot(name: str, kind: str = "model", what: str = "model") -> str:
    """A local folder for Hub id `name` (`org/name` from the HF cache, `hf://org/name` downloaded if
    missing).

    Raises RaftkitError when a bare id is not cached or a download fails.
    """
    from huggingface_hub import constants, snapshot_download

    repo = explicit_id(name) or name
    try:
        return snapshot_download(repo, repo_type=kind, local_files_only=True)
    except Exception:
        if not explicit_id(name):
            raise RaftkitError(
                f"{what} '{name}' is not a local folder and not in the Hugging Face cache; "
                f"to download it from the Hub, write {HUB_PREFIX}{name}"
            ) from None
    was = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = (
        False  # the user named this id explicitly: this one download is allowed
    )
    try:
        return snapshot_download(repo, repo_type=kind)
    except Exception as e:
        raise RaftkitError(
            f"{what} '{name}' could not be fetched from the Hugging Face Hub: {type(e).__name__}"
        ) from None
    finally:
        constants.HF_HUB_OFFLINE = was
