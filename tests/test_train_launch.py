"""`--launcher accelerate` builds the right `accelerate launch` command (checked without a GPU)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import pytest

from raftkit import config
from raftkit.cli import main
from raftkit.errors import RaftkitError
from raftkit.train.launch import launch_command

RECIPES = Path(__file__).parents[1] / "recipes"


def args(**kw) -> Namespace:
    base = dict(
        config="recipes/sft_full.yaml",
        set=["optim.lr=1e-5", "output_dir=runs/x"],
        overwrite=True,
        resume=False,
        launcher="accelerate",
        accelerate_config=str(RECIPES / "accelerate" / "fsdp.yaml"),
    )
    return Namespace(**{**base, **kw})


def test_launch_command_is_accelerate_launch_of_raftkit_train():
    cmd = launch_command(args())
    assert cmd == [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(RECIPES / "accelerate" / "fsdp.yaml"),
        "-m",
        "raftkit.cli",
        "train",
        "--config",
        "recipes/sft_full.yaml",
        "--set",
        "optim.lr=1e-5",
        "--set",
        "output_dir=runs/x",
    ]
    assert "--launcher" not in cmd  # the child trains; it must not launch again
    assert "--overwrite" not in cmd  # the launcher clears the folder once, not every rank


def test_accelerate_parses_the_command_for_both_configs():
    from accelerate.commands.launch import launch_command_parser

    for name in ("fsdp", "deepspeed_zero2"):
        cmd = launch_command(
            args(
                accelerate_config=str(RECIPES / "accelerate" / f"{name}.yaml"),
                resume=True,
                overwrite=False,
            )
        )
        parsed = launch_command_parser().parse_args(cmd[3:])
        assert parsed.config_file.endswith(f"{name}.yaml") and parsed.module is True
        assert parsed.training_script == "raftkit.cli"
        assert parsed.training_script_args[:3] == ["train", "--config", "recipes/sft_full.yaml"]
        assert parsed.training_script_args[-1] == "--resume"


def test_launch_needs_an_existing_accelerate_config():
    with pytest.raises(RaftkitError, match="needs --accelerate-config"):
        launch_command(args(accelerate_config=None))
    with pytest.raises(RaftkitError, match="nope.yaml: file not found"):
        launch_command(args(accelerate_config="nope.yaml"))


def test_cli_spawns_the_launch_command(monkeypatch, tmp_path):
    import subprocess

    seen = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env: seen.append((cmd, env)) or 0)
    rc = main(
        [
            "train",
            "--config",
            str(RECIPES / "sft_lora_tiny.yaml"),
            "--set",
            f"output_dir={tmp_path}/run",
            "--launcher",
            "accelerate",
            "--accelerate-config",
            str(RECIPES / "accelerate" / "deepspeed_zero2.yaml"),
        ]
    )
    assert rc == 0 and len(seen) == 1
    cmd, env = seen[0]
    assert (
        env["RAFTKIT_LAUNCHED"] == "1"
    )  # the ranks skip the run-folder check the launcher already did
    assert cmd[2:5] == [
        "accelerate.commands.launch",
        "--config_file",
        str(RECIPES / "accelerate" / "deepspeed_zero2.yaml"),
    ]
    assert cmd[-2:] == ["--set", f"output_dir={tmp_path}/run"]
    assert not (tmp_path / "run").exists()  # the launched processes write the run, not the launcher


def test_launcher_checks_before_spawning(monkeypatch, tmp_path, capsys):
    import subprocess

    seen = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, env: seen.append(cmd) or 0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    argv = [
        "train",
        "--config",
        str(RECIPES / "sft_lora_tiny.yaml"),
        "--set",
        f"output_dir={tmp_path}/run",
        "--launcher",
        "accelerate",
        "--accelerate-config",
        str(RECIPES / "accelerate" / "fsdp.yaml"),
    ]
    assert main(argv) == 2 and not seen
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert main(argv + ["--set", "data.path=nope.jsonl"]) == 2 and not seen
    assert main(argv + ["--overwrite"]) == 0 and len(seen) == 1
    # the ranks train beside the old run; the launcher swaps the new run in once they succeed
    assert seen[0][-2:] == ["--set", f"output_dir={tmp_path / '.run.overwrite'}"]
    assert (
        not (tmp_path / "run" / "run.json").exists() and not (tmp_path / ".run.overwrite").exists()
    )
    assert config.read_yaml(tmp_path / "run" / "config.yaml")["output_dir"] == f"{tmp_path}/run"
