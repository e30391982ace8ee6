"""`raftkit export RUN --merge --out DIR`: a LoRA run's adapter merged into its (non-quantized) base,
saved as a standalone model folder any transformers/vLLM/llama.cpp converter can load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from raftkit import atomic, models
from raftkit.errors import RaftkitError


def export_run(run: str | Path, out: str | Path, merge: bool = True, overwrite: bool = False) -> Path:
    """Write RUN's model to `out` (merged when `merge`); returns `out`. Raises RaftkitError for bad input."""
    run, out = Path(run), Path(out)
    model_dir = run / "model"
    if not (run / "run.json").is_file() or not model_dir.is_dir():
        raise RaftkitError(f"{run}: not a finished `raftkit train` run (needs run.json and model/)")
    if out.exists() and not overwrite:
        raise RaftkitError(f"{out} already exists: pass --overwrite to replace it")
    adapter = model_dir / "adapter_config.json"
    info = json.loads((run / "run.json").read_text())
    if merge and not adapter.is_file():
        raise RaftkitError(f"{run} is a '{info.get('method')}' run holding a full model, not a LoRA adapter: "
                           f"nothing to merge; use {model_dir} directly or export without --merge")
    with atomic.staged_dir(out) as tmp:
        if not merge:
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        else:
            _merge(model_dir, info.get("stage"), tmp)
        (tmp / "raftkit_export.json").write_text(json.dumps({"run": str(run.resolve()), "merged": merge,
                                                             **{k: info.get(k) for k in ("stage", "method", "base_model")}}))
    return out


def _merge(model_dir: Path, stage: str | None, tmp: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    models.quiet_transformers()
    base = json.loads((model_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    tok = models.load_tokenizer(base)
    # The base is loaded in full precision even for QLoRA runs: merging into 4-bit weights would round
    # the adapter away, and a standalone model should not need bitsandbytes.
    kwargs = {"dtype": torch.float32}
    if stage == "reward":
        cls = AutoModelForSequenceClassification
        kwargs.update(num_labels=1, pad_token_id=tok.pad_token_id)
    else:
        cls = AutoModelForCausalLM
    model = cls.from_pretrained(models.resolve_generator(base), **kwargs)
    merged = PeftModel.from_pretrained(model, str(model_dir)).merge_and_unload()
    merged.save_pretrained(tmp)
    tok.save_pretrained(tmp)


def command(args) -> None:
    """CLI handler of `raftkit export`."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers v6 renames, not ours to fix
    out = export_run(args.run, args.out, merge=args.merge, overwrite=args.overwrite)
    print(f"exported {'merged model' if args.merge else 'model'} of {args.run} to {out}")
