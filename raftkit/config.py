"""Typed config: pydantic sections are the schema, YAML recipes fill them, `--set` overrides win.

One precedence rule: field defaults < YAML file < `--set section.key=value`. Loading collects every
problem (unknown keys, wrong types, values out of range) and raises one ConfigError listing all of
them; cross-field rules (`Section.check`) run once the types and ranges hold. Stage-specific
sections live beside their stage and reuse the shared sections defined here (evidence check,
generation, runtime): the retrieval sections and `RaftkitConfig`, the config of `index` and `ask`,
in raftkit/retrieval/config.py; the others in raftkit/raft/, raftkit/train/ and raftkit/compare/.
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    model_validator,
)

from raftkit import files
from raftkit.errors import ConfigError, RaftkitError

T = TypeVar("T", bound="Section")
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")

DEFAULT_GENERATOR = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"


class Section(BaseModel):
    """A config section: unknown keys are errors and values keep their YAML types (no "5" -> 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _yaml_floats(cls, data: Any) -> Any:
        # YAML 1.1 reads `1e-3` (no dot) as a string; users mean a number
        if isinstance(data, dict):
            fixed = {
                k: float(v)
                for k, v in data.items()
                if isinstance(v, str) and _SCIENTIFIC.match(v.strip()) and _accepts_float(cls, k)
            }
            data = {**data, **fixed}
        return data

    def check(self) -> list[str]:
        """Problems that involve several fields; runs after every type and range check has
        passed."""
        return []


def _accepts_float(cls: type[Section], name: str) -> bool:
    field = cls.model_fields.get(name)
    return field is not None and float in (field.annotation, *typing.get_args(field.annotation))


# ----------------------------------------------------------------------------- shared sections
# An evidence-gate threshold (raftkit.retrieval.gate): a cosine score, `auto` or `off`; YAML reads a
# bare `off` as false, which means the same
MinScore = Annotated[
    float | Literal["auto", "off"], BeforeValidator(lambda v: "off" if v is False else v)
]


GateKind = Literal["auto", "score", "verifier", "both"]


class EvidenceCheck(Section):
    """What decides that retrieved chunks are evidence enough to answer (raftkit.retrieval.gate);
    shared by `retrieval` (ask) and every RAG system of `compare`."""

    min_score: MinScore = Field(
        "auto",
        description="the cosine gate: abstain without asking the model when no retrieved chunk"
        " scores this much; auto = the threshold a `raftkit train` run carries from its build"
        " (none for any other model); off = none",
    )
    verifier: str = Field(
        "auto",
        description="evidence verifier (a `raftkit train` run of stage verifier) that scores the"
        " top-k chunks; auto = the one the generator run carries (none for any other model);"
        " empty = none",
    )
    gate: GateKind = Field(
        "auto",
        description="what refuses a question: score (the best cosine score below min_score),"
        " verifier (no chunk reaches the verifier's calibrated threshold), both (a logistic head"
        " over the two, fitted with the verifier); auto = verifier when there is one, else score",
    )
    rerank: bool = Field(
        False, description="show the prompt's chunks in the verifier's order instead of retrieval's"
    )
    candidates: NonNegativeInt | Literal["auto"] = Field(
        "auto",
        description="chunks the verifier judges per question, retrieved beyond the top-k the"
        " prompt shows; when it judges more, the prompt shows the top-k it scores best. auto ="
        " as many as the verifier was calibrated on (its verifier.top_k); 0 = the top-k",
    )


class GenerationConfig(Section):
    model: str = Field(
        DEFAULT_GENERATOR,
        description="the generator: the offline default, an HF id, a local folder or a `raftkit"
        " train` run",
    )
    backend: Literal["hf", "openai"] = Field(
        "hf",
        description="hf = load the model here; openai = any OpenAI-compatible server (vLLM,"
        " llama.cpp, Ollama)",
    )
    base_url: str = Field(
        "", description="backend openai: the server's URL, e.g. http://localhost:8000/v1"
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY",
        description="backend openai: name of the environment variable that holds the API key",
    )
    tokenizer: str = Field(
        "",
        description="backend openai: the model whose tokenizer and chat template build the prompts"
        " whose choices the server scores (empty = model; the server must use the same one)",
    )
    max_new_tokens: int = Field(
        256, ge=1, description="most tokens per reply, where a command sets no limit of its own"
    )
    temperature: float = Field(
        0.0, ge=0, description="sampling temperature; 0 = greedy, reproducible"
    )
    batch_size: int = Field(
        8, ge=1, description="prompts per forward pass (hf) or concurrent requests (openai)"
    )
    timeout_s: float = Field(
        300.0, gt=0, description="backend openai: seconds per request before it is retried"
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="backend openai: retries (with backoff, honouring Retry-After) before giving"
        " up",
    )
    seed: int = Field(
        0, description="seed of sampling when temperature > 0 (hf), sent with each request (openai)"
    )

    def check(self) -> list[str]:
        if self.backend == "openai" and not self.base_url:
            return ["backend 'openai' needs base_url (e.g. http://localhost:8000/v1)"]
        return []


class RuntimeConfig(Section):
    """Where and in which precision every model of a command runs (generation, scoring, embedding,
    training)."""

    device: str = Field(
        "auto", description="cpu, cuda or cuda:N; auto = cuda when available, else cpu"
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="precision the models run in; auto = bfloat16 on CUDA (float16 without bf16)"
        " and on CPUs with AMX or AVX512-BF16, else float32",
    )
    cpu_kernels: Annotated[  # YAML reads a bare `off` as false
        Literal["auto", "off"], BeforeValidator(lambda v: "off" if v is False else v)
    ] = Field(
        "auto",
        description="training's speed-ups (raftkit/train/cpu/: fused LoRA kernels, packed"
        " attention, answer-only loss, denormal flushing); off = plain peft and TRL",
    )


# ----------------------------------------------------------------------------- messages
def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _field_at(cls: type[BaseModel], loc: tuple):
    """(the FieldInfo at `loc` or None, the model that owns that key); list indices are skipped."""
    owner, field = cls, None
    names = [part for part in loc if not isinstance(part, int)]
    for i, name in enumerate(names):
        if owner is None or name not in owner.model_fields:
            return None, owner
        field = owner.model_fields[name]
        if i < len(names) - 1:
            inner = _unwrap(field.annotation)
            owner = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return field, owner


def _unwrap(tp: Any) -> Any:
    """list[X] -> X, X | None -> X; anything else as it is."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return _unwrap(next(a for a in typing.get_args(tp) if a is not type(None)))
    return tp


def _bounds(field) -> str:
    """'must be at least 1' / 'must be positive' / 'must be in [0, 1)' from a field's
    ge/gt/le/lt."""
    b = {
        k: getattr(m, k) for m in field.metadata for k in ("ge", "gt", "le", "lt") if hasattr(m, k)
    }
    low, high = b.get("ge", b.get("gt")), b.get("le", b.get("lt"))
    if high is None:
        if "gt" in b:
            return "must be positive" if low == 0 else f"must be greater than {low}"
        return "must not be negative" if low == 0 else f"must be at least {low}"
    if low is None:
        return f"must be at most {high}" if "le" in b else f"must be below {high}"
    return f"must be in {'[' if 'ge' in b else '('}{low}, {high}{']' if 'le' in b else ')'}"


def _type_name(tp: Any) -> str:
    tp = _unwrap(tp)
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def problem(err: dict, cls: type[BaseModel]) -> str:
    """One pydantic error as raftkit words: `optim.lr (-1.0) must be positive`,
    `unknown key 'a.b' (known: ...)`."""
    loc, kind, value = err["loc"], err["type"], err.get("input")
    where = _where(loc)
    field, owner = _field_at(cls, loc)
    if kind == "extra_forbidden":
        known = ", ".join(sorted(owner.model_fields)) if owner else ""
        return f"unknown key '{where}' (known: {known})"
    if field is None:
        return f"{where}: {err['msg']}"
    inner = _unwrap(field.annotation)
    if kind == "literal_error":
        return f"{where}: {value!r} is not one of {', '.join(map(repr, typing.get_args(inner)))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        shown = float(value) if inner is float else value
        return f"{where} ({shown}) {_bounds(field)}"
    if isinstance(inner, type) and issubclass(inner, BaseModel) and not isinstance(loc[-1], int):
        return f"{where}: expected a section (mapping), got {value!r}"
    tp = typing.get_args(field.annotation)[0] if isinstance(loc[-1], int) else field.annotation
    return f"{where}: expected {_type_name(tp)}, got {value!r}"


def _cross_checks(obj: Any, prefix: str) -> list[str]:
    """Every section's check(), depth first (lists of sections included); problems carry the section
    path."""
    out = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            out += _cross_checks(item, f"{prefix[:-1]}[{i}].")
        return out
    if not isinstance(obj, Section):
        return out
    for name in type(obj).model_fields:
        out += _cross_checks(getattr(obj, name), f"{prefix}{name}.")
    return out + [f"{prefix}{p}" for p in obj.check()]


# ----------------------------------------------------------------------------- loading
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
    except UnicodeDecodeError:
        raise RaftkitError(f"{path}: not a text file (UTF-8)") from None
    if not isinstance(data, dict):
        raise RaftkitError(f"{path}: expected a mapping of sections at the top level")
    return data


def load(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    data: dict | None = None,
) -> T:
    """Build config `cls` from defaults < YAML at `path` (or `data`) < `--set` overrides.

    Raises ConfigError listing every problem found.
    """
    raw = read_yaml(path) if path else dict(data or {})
    raw = _merge(raw, parse_overrides(overrides))
    source = str(path) if path else "config"
    try:
        cfg = cls.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_all_problems(cls, raw, e.errors()), source=source) from None
    problems = _cross_checks(cfg, "")
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def _all_problems(cls: type[Section], raw: dict, errors: list[dict]) -> list[str]:
    """The field errors, plus the cross-field problems of every section whose own fields are all
    valid (checked on a copy without the bad values), so one run lists everything there is to
    fix."""
    problems = [problem(err, cls) for err in errors]
    pruned = json.loads(json.dumps(raw, default=str))
    for err in errors:
        _drop(pruned, err["loc"])
    try:
        partial = cls.model_validate(pruned)
    except ValidationError:
        return problems
    # a rule that reads a bad field would see its default instead: leave such problems for the next
    # run
    bad = [(_where(err["loc"][:-1]), str(err["loc"][-1])) for err in errors]
    for p in _cross_checks(partial, ""):
        if not any(
            p.startswith(f"{sec}." if sec else "")
            and re.search(rf"\b{re.escape(name)}\b", p[len(sec) :])
            for sec, name in bad
        ):
            problems.append(p)
    return problems


def _drop(tree: Any, loc: tuple) -> None:
    """Remove the value at `loc` from a nested dict/list tree (nothing when it is not there)."""
    for part in loc[:-1]:
        try:
            tree = tree[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(tree, dict):
        tree.pop(loc[-1], None)


def to_dict(cfg: BaseModel) -> dict:
    """The resolved config as plain data (what gets written next to outputs)."""
    return cfg.model_dump(mode="json")


def save_resolved(cfg: BaseModel, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved config next to an output so the run can be repeated."""
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
    return files.write_text(Path(out_dir) / name, text)
