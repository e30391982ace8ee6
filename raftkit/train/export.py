"""`raftkit export RUN --merge --out DIR`: a LoRA run's adapter merged into its (non-quantized)
base, saved as a standalone model folder any transformers/vLLM/llama.cpp converter can load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from raftkit import models, outputs
from raftkit.errors import RaftkitError
from raftkit.runs import RunFolder


def export_run(
    run: str | Path, out: str | Path, merge: bool = True, overwrite: bool = False
) -> Path:
    """Write RUN's model to `out` (merged when `merge`); returns `out`. Raises RaftkitError for bad
    input."""
    run, out = Path(run), Path(out)
    info = RunFolder.open(run, "").info
    model_dir = run / "model"
    ref = models.resolve(str(run))
    if merge and not ref.adapter:
        raise RaftkitError(
            f"{run} is a '{info.get('method')}' run holding a full model, not a LoRA adapter: "
            f"nothing to merge; use {model_dir} directly or export without --merge"
        )
    with outputs.lock(out, "export"):
        if out.exists() and not overwrite:
            raise RaftkitError(f"{out} already exists: pass --overwrite to replace it")
        outputs.check_replaceable(out, "export", "--out")
        with outputs.staged(out, "export") as tmp:
            if merge:
                _merge(ref, info.get("stage"), tmp)
            else:
                shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
            (tmp / "raftkit_export.json").write_text(
                json.dumps(
                    {
                        "run": str(run.resolve()),
                        "merged": merge,
                        **{k: info.get(k) for k in ("stage", "method", "base_model")},
                    }
                )
            )
    return out


def _merge(ref: models.ModelRef, stage: str | None, tmp: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tok = models.load_tokenizer(ref.base)
    # The base is loaded in full precision even for QLoRA runs: merging into 4-bit weights would
    # round the adapter away, and a standalone model should not need bitsandbytes.
    kwargs = {"num_labels": 1, "pad_token_id": tok.pad_token_id} if stage == "reward" else {}
    cls = AutoModelForSequenceClassification if stage == "reward" else AutoModelForCausalLM
    models.load_pretrained(ref, cls, torch.float32, **kwargs).save_pretrained(tmp)
    tok.save_pretrained(tmp)
