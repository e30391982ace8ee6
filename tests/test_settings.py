"""`raftkit config`: every setting of every command, with its type, default and description."""

from __future__ import annotations

import pytest

from raftkit import settings
from raftkit.cli import main


def test_every_setting_has_a_description():
    rows = settings.keys()
    assert {k.command for k in rows} == set(settings.configs())
    missing = [f"{k.command}: {k.key}" for k in rows if not k.description.strip()]
    assert missing == []


def test_config_lists_a_section_as_set_writes_it(capsys):
    assert main(["config", "train.optim"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("== train: raftkit train")
    keys = [line.split(":")[0] for line in out[1:] if not line.startswith(" ")]
    assert "optim.lr" in keys and all(k.startswith("optim.") for k in keys)
    lr = out.index(next(line for line in out if line.startswith("optim.lr:")))
    assert out[lr].startswith("optim.lr: float = ") and out[lr + 1].startswith("    ")


def test_a_section_under_every_command_and_list_items(capsys):
    assert main(["config", "retrieval.top_k"]) == 0
    out = capsys.readouterr().out
    assert "== index:" in out and "retrieval.top_k: int = " in out
    assert main(["config", "compare.systems"]) == 0
    out = capsys.readouterr().out
    assert "systems[].verifier: str = 'auto'" in out and "systems[].top_k: int = 5" in out


@pytest.mark.parametrize("section", ["nonsense", "train.nonsense"])
def test_an_unknown_section_is_one_error_line(section, capsys):
    assert main(["config", section]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: no setting under '{section}'")
