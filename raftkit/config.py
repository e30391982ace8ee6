"""Typed config: dataclasses are the schema, YAML recipes fill them, `--set` overrides win.

One precedence rule: dataclass defaults < YAML file < `--set section.key=value`. Loading collects
every problem (unknown keys, wrong types, values out of range, cross-field conflicts) and raises
one ConfigError listing all of them. Stage-specific sections live beside their stage
(`raftkit/train/config.py` ...) and reuse the shared sections defined here.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from raftkit import atomic
from raftkit.errors import ConfigError, RaftkitError

T = TypeVar("T")
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


# ----------------------------------------------------------------------------- validation helpers
def check_min(section: Any, **minimums: int) -> list[str]:
    """A problem for each named field of `section` below its minimum: 'name (v) must be at least n'."""
    problems = []
    for name, low in minimums.items():
        value = getattr(section, name)
        if value < low:
            problems.append(f"{name} ({value}) must " + ("not be negative" if low == 0 else f"be at least {low}"))
    return problems


def check_interval(section: Any, **intervals: str) -> list[str]:
    """A problem for each named field of `section` outside its interval, written like '[0, 1)' or '(0, 1]'."""
    problems = []
    for name, spec in intervals.items():
        low, high = (float(x) for x in spec[1:-1].split(","))
        value = getattr(section, name)
        above = value >= low if spec[0] == "[" else value > low
        below = value <= high if spec[-1] == "]" else value < high
        if not (above and below):
            problems.append(f"{name} ({value}) must be in {spec}")
    return problems


# ----------------------------------------------------------------------------- shared sections
@dataclasses.dataclass
class ChunkingConfig:
    size: int = 256  # tokens of the generator's tokenizer; RAFT prompts hold 5 chunks, so keep it small
    overlap: int = 32  # tokens shared by neighbouring chunks, so a fact cut in two survives whole
    tokenizer: str = DEFAULT_GENERATOR  # the model whose tokens measure a chunk

    def validate(self) -> list[str]:
        problems = check_min(self, size=16, overlap=0)
        if self.overlap >= 0 and self.overlap >= self.size:
            problems.append(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return problems


@dataclasses.dataclass
class EmbeddingConfig:
    model: str = DEFAULT_EMBEDDER
    batch_size: int = 64  # chunks per forward pass
    device: str = "auto"  # auto = cuda when available, else cpu

    def validate(self) -> list[str]:
        return check_min(self, batch_size=1)


@dataclasses.dataclass
class IndexConfig:
    kind: Literal["flat", "hnsw", "ivfpq"] = "flat"  # flat = exact; hnsw/ivfpq for 100k+ chunks
    hnsw_m: int = 32  # graph degree: higher = better recall, more memory
    hnsw_ef_search: int = 64  # candidates per query: higher = better recall, slower
    ivf_nlist: int = 0  # IVF cells; 0 = about 4*sqrt(n)
    ivf_nprobe: int = 16  # cells searched per query
    pq_m: int = 16  # PQ sub-quantizers; must divide the embedding dimension

    def validate(self) -> list[str]:
        return check_min(self, hnsw_m=1, hnsw_ef_search=1, ivf_nlist=0, ivf_nprobe=1, pq_m=1)


@dataclasses.dataclass
class RetrievalConfig:
    chunking: ChunkingConfig = dataclasses.field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = dataclasses.field(default_factory=EmbeddingConfig)
    index: IndexConfig = dataclasses.field(default_factory=IndexConfig)
    indexes_dir: str = "indexes"  # where named indexes live
    top_k: int = 5

    def validate(self) -> list[str]:
        return check_min(self, top_k=1)


@dataclasses.dataclass
class GenerationConfig:
    model: str = DEFAULT_GENERATOR  # an offline default, an HF id or a local directory
    backend: Literal["hf", "openai"] = "hf"  # openai = any OpenAI-compatible server (vLLM, llama.cpp, Ollama)
    base_url: str = ""  # for backend openai, e.g. http://localhost:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable holding the key
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy, reproducible
    batch_size: int = 8  # prompts per forward pass (hf) or concurrent requests (openai)
    device: str = "auto"  # auto = cuda when available, else cpu
    seed: int = 0

    def validate(self) -> list[str]:
        problems = check_min(self, max_new_tokens=1, batch_size=1, temperature=0)
        if self.backend == "openai" and not self.base_url:
            problems.append("backend 'openai' needs base_url (e.g. http://localhost:8000/v1)")
        return problems


@dataclasses.dataclass
class RaftkitConfig:
    """The config of the retrieval commands (`index`, `ask`)."""

    retrieval: RetrievalConfig = dataclasses.field(default_factory=RetrievalConfig)
    generation: GenerationConfig = dataclasses.field(default_factory=GenerationConfig)


# ----------------------------------------------------------------------------- loading
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, problems: list[str]) -> Any:
    """Check `value` against type `tp`; returns the converted value (problems appended)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a section (mapping), got {value!r}")
            return tp()
        return _build(tp, value, where, problems)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], where, problems)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {value!r}")
            return []
        (item_tp,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {value!r}")
            return {}
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
        return float(value)  # YAML 1.1 reads `1e-3` (no dot) as a string; users mean a number
    if tp in (int, float) and isinstance(value, bool) or not isinstance(value, tp):
        problems.append(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    return value


def _build(cls: type[T], data: dict, prefix: str, problems: list[str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            problems.append(f"unknown key '{where}' (known: {', '.join(sorted(fields))})")
            continue
        kwargs[key] = _convert(value, hints[key], where, problems)
    obj = cls(**kwargs)
    return obj


def _validate(obj: Any, prefix: str) -> list[str]:
    """Run every section's validate() depth-first; problems are prefixed with the section path."""
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            problems += _validate(value, f"{prefix}{f.name}.")
    if hasattr(obj, "validate"):
        problems += [f"{prefix}{p}" for p in obj.validate()]
    return problems


def parse_overrides(overrides: list[str] | None) -> dict:
    """Turn ['a.b=1', 'c=x'] into {'a': {'b': 1}, 'c': 'x'}; values are parsed as YAML scalars."""
    tree: dict = {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RaftkitError(f"--set expects section.key=value, got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RaftkitError(f"--set {item}: '{part}' is not a section")
        node[parts[-1]] = value
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping; missing or malformed files are RaftkitErrors."""
    path = Path(path)
    if not path.is_file():
        raise RaftkitError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise RaftkitError(f"{path}: not valid YAML{at}") from None
    if not isinstance(data, dict):
        raise RaftkitError(f"{path}: expected a mapping of sections at the top level")
    return data


def load(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
         data: dict | None = None) -> T:
    """Build config `cls` from defaults < YAML at `path` (or `data`) < `--set` overrides.

    Raises ConfigError listing every problem found.
    """
    raw = read_yaml(path) if path else dict(data or {})
    raw = _merge(raw, parse_overrides(overrides))
    problems: list[str] = []
    cfg = _build(cls, raw, "", problems)
    if not problems:
        problems = _validate(cfg, "")
    if problems:
        raise ConfigError(problems, source=str(path) if path else "config")
    return cfg


def to_dict(cfg: Any) -> dict:
    """The resolved config as plain data (what gets written next to outputs)."""
    return dataclasses.asdict(cfg)


def save_resolved(cfg: Any, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config next to an output so the run can be repeated."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    return atomic.write_text(Path(out_dir) / name, text)
