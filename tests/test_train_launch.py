"""`--launcher accelerate`: the `accelerate launch` command it builds (checked without a GPU), and
real 2-process runs on CPU (recipes/accelerate/cpu_ddp.yaml: torchrun, gloo) that train as a
1-process run of the same global batch does, resume across launches and fail as one line."""

from __future__ import annotations

import json
import os
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from raftkit import config, outputs
from raftkit.cli import main
from raftkit.errors import RaftkitError
from raftkit.train.launch import launch_command
from raftkit.train.run import LAUNCHED_ENV, RUN_FOLDER_ENV
from raftkit.train.runfolder import last_checkpoint

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
        "--quiet",
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

    for name in ("fsdp", "deepspeed_zero2", "cpu_ddp"):
        cmd = launch_command(
            args(
                accelerate_config=str(RECIPES / "accelerate" / f"{name}.yaml"),
                resume=True,
                overwrite=False,
            )
        )
        parsed = launch_command_parser().parse_args(cmd[3:])
        assert parsed.config_file.endswith(f"{name}.yaml") and parsed.module is True
        assert parsed.quiet  # a failed rank shows its own error, not accelerate's traceback
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

    seen, envs = [], []
    monkeypatch.setattr(
        subprocess, "call", lambda cmd, env: seen.append(cmd) or envs.append(env) or 0
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text("{}")
    outputs.mark(tmp_path / "run", "run")  # a run of ours: --overwrite may replace it
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
    assert envs[0][RUN_FOLDER_ENV] == str(tmp_path / "run")  # what the ranks' lines name
    assert (
        not (tmp_path / "run" / "run.json").exists() and not (tmp_path / ".run.overwrite").exists()
    )
    assert config.read_yaml(tmp_path / "run" / "config.yaml")["output_dir"] == f"{tmp_path}/run"


def test_launched_ranks_name_the_run_folder_the_user_asked_for(
    tiny_llama, train_tiny, tmp_path, monkeypatch, capsys
):
    """With --overwrite the ranks train in the launcher's staging folder, which it swaps in
    afterwards: their lines name the run folder the user asked for, not the staging one."""
    staging, run = tmp_path / ".run.overwrite", tmp_path / "run"
    monkeypatch.setenv(LAUNCHED_ENV, "1")
    monkeypatch.setenv(RUN_FOLDER_ENV, str(run))
    steps = ("optim.max_steps=1", "data.eval_path=")
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, staging, *steps) == 0
    shown = capsys.readouterr()
    assert f"-> {run}\n" in shown.err and shown.out.rstrip().endswith(f"run folder {run}")
    assert str(staging) not in shown.out + shown.err
    assert (staging / "run.json").is_file() and not run.exists()


def test_launch_refuses_fsdp_on_cpu(tmp_path):
    """accelerate shards only GPU processes: an FSDP config with use_cpu would train plain DDP."""
    fsdp_cpu = tmp_path / "fsdp_cpu.yaml"
    text = (RECIPES / "accelerate" / "fsdp.yaml").read_text()
    fsdp_cpu.write_text(text.replace("use_cpu: false", "use_cpu: true"))
    with pytest.raises(RaftkitError, match=r"FSDP with use_cpu: true would train plain DDP"):
        launch_command(args(accelerate_config=str(fsdp_cpu)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("distributed_type: [")
    with pytest.raises(RaftkitError, match=r"bad.yaml: not valid YAML$"):
        launch_command(args(accelerate_config=str(bad)))


# ----------------------------------------------------------------- real 2-process runs (CPU, gloo)
CPU_DDP = RECIPES / "accelerate" / "cpu_ddp.yaml"
# Exact comparisons: no dropout draws (the ranks' RNG streams differ from one process's), float32,
# a checkpoint at every step; no eval split (it is not what is compared, and it costs time).
EXACT = (
    "lora.dropout=0",
    "runtime.dtype=float32",
    "optim.max_steps=3",
    "optim.save_steps=1",
    "data.eval_path=",
)
# One process at batch 2 and two at batch 1 train on the same global batch: accelerate hands the
# ranks alternate micro-batches of one seeded sampler, which one process accumulates in that order.
ONE, TWO = "optim.batch_size=2", "optim.batch_size=1"
RECIPES_2P = ["sft_lora_tiny.yaml", "sft_full_tiny.yaml", "dpo_lora_tiny.yaml"]


@pytest.fixture(autouse=True)
def one_thread_per_process(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 ranks on a shared 2-core machine


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, tiny_llama, train_tiny):
    """one_process(recipe) -> the folder of a 1-process run of `recipe` (EXACT, batch 2), once."""
    runs = {}

    def get(recipe: str) -> Path:
        if recipe not in runs:
            run = tmp_path_factory.mktemp("one-process") / "run"
            assert train_tiny(recipe, tiny_llama, run, *EXACT, ONE) == 0
            runs[recipe] = run
        return runs[recipe]

    return get


def _launch(train_argv, recipe: str, model: Path, run: Path, *extra: str) -> int:
    argv = train_argv(recipe, model, run, *EXACT, TWO, *extra)
    return main(argv + ["--launcher", "accelerate", "--accelerate-config", str(CPU_DDP)])


def _losses(run: Path) -> list[float]:
    """step, loss, gradient norm, step, loss ... of the run's training log."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    logged = [m for m in map(json.loads, lines) if "loss" in m]
    return [x for m in logged for x in (m["step"], m["loss"], m["grad_norm"])]


def _assert_same_training(two: Path, one: Path, read_tensors) -> None:
    """Same losses and gradient norms at every step, and the same trained weights."""
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-5)
    weights = next(
        n
        for n in ("adapter_model.safetensors", "model.safetensors")
        if (one / "model" / n).exists()
    )
    a, b = read_tensors(one / "model" / weights), read_tensors(two / "model" / weights)
    assert a.keys() == b.keys()
    for k in a:
        assert b[k].allclose(a[k], rtol=1e-5, atol=1e-6), k


@pytest.mark.parametrize("recipe", RECIPES_2P)
def test_multi_process_run_trains_as_one_process_does(
    recipe, tiny_llama, tmp_path, one_process, train_argv, read_tensors, capfd
):
    one, two = one_process(recipe), tmp_path / "run"
    capfd.readouterr()
    assert _launch(train_argv, recipe, tiny_llama, two) == 0
    err = capfd.readouterr().err
    # every trained weight takes part in every step: DDP is not asked to search (and warn)
    assert "find_unused_parameters" not in err
    assert err.count("runtime: ") == 1  # said once for the launch, not once per rank
    summary = json.loads((two / "run.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 3
    assert json.loads((one / "run.json").read_text())["processes"] == 1
    _assert_same_training(two, one, read_tensors)
    # rank 0 alone wrote the run folder: the same files as one process, each step logged once
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert _losses(two)[::3] == [1, 2, 3]
    assert {p.name for p in (two / "checkpoint-3").glob("rng_state*")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }


# Imported by every Python process started with this folder on PYTHONPATH: rank 1 of a launch is
# killed (SIGKILL, as the OOM killer does) once its checkpoint of step KILL_RANK1_AT_STEP is saved.
KILLER = """
import os

if os.environ.get("RANK") == "1" and os.environ.get("KILL_RANK1_AT_STEP"):
    import signal

    from raftkit.train import trainer

    _recorder = trainer.recorder

    def recorder():
        class Dies(type(_recorder())):
            def on_save(self, args, state, control, **kwargs):
                if state.global_step == int(os.environ["KILL_RANK1_AT_STEP"]):
                    os.kill(os.getpid(), signal.SIGKILL)

        return Dies()

    trainer.recorder = recorder
"""


def test_multi_process_launch_survives_a_dead_rank_and_resumes(
    tiny_llama, tmp_path, monkeypatch, capfd, one_process, train_argv, read_tensors
):
    """A rank killed mid-run takes the launch down with one line (exit 2); the run keeps its last
    checkpoint, and `--resume` across a new launch finishes it as an unbroken run would."""
    (tmp_path / "killer").mkdir()
    (tmp_path / "killer" / "sitecustomize.py").write_text(KILLER)
    path = os.pathsep.join(p for p in (str(tmp_path / "killer"), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("KILL_RANK1_AT_STEP", "2")
    run, recipe = tmp_path / "run", "sft_lora_tiny.yaml"
    assert _launch(train_argv, recipe, tiny_llama, run) == 2
    # the ranks' own reports (the survivor may name its lost peer), then the launcher's one line
    err = capfd.readouterr().err.strip().splitlines()
    assert [line for line in err if "a training process failed" in line] == err[-1:], err
    # checkpoint-2, or checkpoint-1 where rank 0 was stopped while still writing checkpoint-2
    kept = Path(last_checkpoint(run)).name
    assert kept in ("checkpoint-1", "checkpoint-2") and not (run / "run.json").exists()
    assert err[-1] == (
        "error: a training process failed (accelerate launch exited with code 1; the report above "
        f"names the rank); {run} keeps {kept}: rerun with --resume to continue"
    )
    assert "rank      : 1" in "\n".join(err), err  # torchrun's report names the rank that died
    monkeypatch.delenv("KILL_RANK1_AT_STEP")
    assert _launch(train_argv, recipe, tiny_llama, run, "--resume") == 0
    summary = json.loads((run / "run.json").read_text())
    assert summary["resumed"] is True and summary["steps"] == 3 and summary["processes"] == 2
    _assert_same_training(run, one_process(recipe), read_tensors)
