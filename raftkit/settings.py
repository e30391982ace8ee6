"""Every setting a user can give, as data: `raftkit config [SECTION]` lists each key of the
commands' configs with its type, default and description (each key's pydantic `Field`), as the
path `--set` takes.

    raftkit config                  # everything, command by command
    raftkit config train.optim      # one section of one command
    raftkit config retrieval        # a section, under every command that has it
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass

from pydantic import BaseModel

from raftkit.errors import RaftkitError


@dataclass(frozen=True)
class Key:
    command: str  # the command family whose config holds it (index, train, compare, probes)
    key: str  # the dotted path `--set` takes
    type: str
    default: str
    description: str


def configs() -> dict[str, type[BaseModel]]:
    """The config of each command family, by the name `raftkit config` lists it under."""
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.probes import ProbesRunConfig
    from raftkit.raft.config import RaftBuildConfig
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.train.config import TrainConfig

    return {
        "index": RaftkitConfig,  # index and ask
        "build-dataset": RaftBuildConfig,
        "train": TrainConfig,
        "compare": CompareConfig,
        "probes": ProbesRunConfig,
    }


def _type_name(annotation) -> str:
    """A readable type: `int`, `str | None`, `list[str]`, `'auto' | 'off'`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _section(annotation) -> type[BaseModel] | None:
    """The model class of a nested section field, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def walk(model: type[BaseModel], command: str, prefix: str = "") -> list[Key]:
    """One Key per leaf setting of `model` (nested sections expanded, a list of sections as
    `name[].key`), in declaration order."""
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _section(field.annotation)
        if nested is not None:
            out += walk(nested, command, key + ".")
            continue
        if typing.get_origin(field.annotation) is list:
            (item,) = typing.get_args(field.annotation) or (None,)
            if _section(item) is not None:
                out.append(Key(command, key, "list", "[]", field.description or ""))
                out += walk(item, command, key + "[].")
                continue
        default = field.get_default(call_default_factory=True)
        out.append(
            Key(command, key, _type_name(field.annotation), repr(default), field.description or "")
        )
    return out


def keys(section: str = "") -> list[Key]:
    """The settings under `section`: "" = all; `train` or `train.optim` = a command's; any other
    dotted prefix (`retrieval`, `generation.seed`) = under every command that has it. RaftkitError
    when nothing matches."""
    rows = [k for name, model in configs().items() for k in walk(model, name)]
    if not section:
        return rows
    command, _, rest = section.partition(".")
    if command in configs():
        picked = [k for k in rows if k.command == command and _under(k.key, rest)]
    else:
        picked = [k for k in rows if _under(k.key, section)]
    if not picked:
        tops = sorted({k.key.split(".")[0].removesuffix("[]") for k in rows})
        raise RaftkitError(
            f"no setting under '{section}'; commands: {', '.join(configs())}; sections: "
            f"{', '.join(tops)}"
        )
    return picked


def _under(key: str, prefix: str) -> bool:
    return (
        not prefix or key == prefix or key.startswith(prefix + ".") or key.startswith(prefix + "[")
    )


USAGE = {
    "index": "raftkit index build|update|query and raftkit ask ... --set KEY=VALUE",
    "build-dataset": "raftkit build-dataset DOCS --config RECIPE --set KEY=VALUE",
    "train": "raftkit train --config RECIPE --set KEY=VALUE",
    "compare": "raftkit compare --config RECIPE --set KEY=VALUE",
    "probes": "raftkit probes NAME --out FILE --set KEY=VALUE",
}


def render(rows: list[Key]) -> str:
    """Command by command, each key with its type and default, its description indented below."""
    lines, command = [], None
    for k in rows:
        if k.command != command:
            command = k.command
            lines += ([""] if lines else []) + [f"== {command}: {USAGE[command]}"]
        lines.append(f"{k.key}: {k.type} = {k.default}")
        if k.description:
            lines.append(f"    {k.description}")
    return "\n".join(lines)
