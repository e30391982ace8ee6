"""Recipes load and validate; each bad configuration is refused in one line, before any model loads,
with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkit.cli import main
from raftkit.train import trainer
from raftkit.train.data import load_data
from raftkit.train.model import weight_dtype
from raftkit.train.run import load_config
from raftkit.train.stages import registry

RECIPES = Path(__file__).parents[1] / "recipes"
TRAIN_ASSETS = Path(__file__).parent / "assets" / "train"
TRAIN_RECIPES = sorted(p for p in RECIPES.glob("*.yaml") if p.name.split("_")[0] in registry())


def test_every_train_recipe_loads_and_names_its_command():
    names = {p.stem for p in TRAIN_RECIPES}
    for combo in (
        "sft_full",
        "sft_lora",
        "sft_qlora",
        "dpo_lora",
        "reward_full",
        "reward_lora",
        "rlhf_lora",
    ):
        assert {combo, f"{combo}_tiny"} <= names, f"{combo} needs a normal and a _tiny recipe"
    for path in TRAIN_RECIPES:
        first = path.read_text().splitlines()[0]
        assert first == f"# raftkit train --config recipes/{path.name}", path.name
        cfg = load_config(str(path))
        stage, *rest = path.stem.split("_")
        assert cfg.stage == stage, path.name
        if stage != "verifier":  # the verifier trains a logistic head: no method in its name
            assert cfg.method == rest[0], path.name


def test_train_config_declares_one_section_per_registered_stage():
    """TrainConfig's stage sections are written out (readable, IDE-visible); they must be exactly
    the stages the registry finds, with each stage's own section type, in pipeline order."""
    from typing import get_args

    from raftkit.train.config import TrainConfig

    stages = registry()
    fields = TrainConfig.model_fields
    assert get_args(fields["stage"].annotation) == tuple(stages)
    assert fields["stage"].default == next(iter(stages))
    for name, stage in stages.items():
        assert fields[name].annotation is stage.section, name
    cfg = TrainConfig(output_dir="x", stage="dpo", dpo={"beta": 0.3})
    assert cfg.dpo.beta == 0.3 and cfg.sft == stages["sft"].section()


def test_accelerate_configs_exist():
    import yaml

    for name in ("fsdp", "deepspeed_zero2"):
        data = yaml.safe_load((RECIPES / "accelerate" / f"{name}.yaml").read_text())
        assert data["distributed_type"] == {"fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED"}[name]
        assert data["mixed_precision"] == "bf16"


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fail the test if anything tries to load a model."""

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the configuration was checked")

    monkeypatch.setattr(trainer, "load_model", boom)


def refused(capsys, tmp_path, recipe: str, *sets: str) -> str:
    run = tmp_path / "run"
    argv = ["train", "--config", str(RECIPES / recipe), "--set", f"output_dir={run}"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    assert not run.exists(), "a refused run wrote its folder"
    return err


def test_unknown_key(capsys, tmp_path, no_model_loading):
    err = refused(capsys, tmp_path, "sft_lora_tiny.yaml", "optim.lrr=0.1")
    assert "unknown key 'optim.lrr'" in err


def test_qlora_with_full_is_rejected_with_every_other_problem(capsys, tmp_path, no_model_loading):
    err = refused(capsys, tmp_path, "sft_full_tiny.yaml", "quant.load_in_4bit=true", "optim.lr=-1")
    assert (
        "method 'full' cannot be combined with quant.load_in_4bit: true (4-bit weights take no "
        "gradients); use method 'qlora' for LoRA on a 4-bit base"
    ) in err
    assert "optim.lr (-1.0) must be positive" in err  # all problems at once
    err = refused(capsys, tmp_path, "sft_qlora_tiny.yaml", "quant.load_in_4bit=false")
    assert "method 'qlora' needs a 4-bit base" in err


def test_dataset_missing_columns_are_named(capsys, tmp_path, no_model_loading):
    data = tmp_path / "questions.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    err = refused(capsys, tmp_path, "sft_lora_tiny.yaml", f"data.path={data}", "data.eval_path=")
    assert (
        "lacks column(s) prompt, completion needed by stage 'sft': it needs prompt+completion or "
        "messages; it has question, answer"
    ) in err


def test_reward_data_without_pairs(capsys, tmp_path, no_model_loading):
    err = refused(
        capsys,
        tmp_path,
        "reward_full_tiny.yaml",
        f"data.path={TRAIN_ASSETS / 'chat_only.jsonl'}",
        "data.eval_path=",
    )
    assert (
        "lacks column(s) prompt, chosen, rejected needed by stage 'reward' (reward and dpo need "
        "preference pairs)"
    ) in err


def test_rlhf_without_reward_model(capsys, tmp_path, no_model_loading):
    err = refused(capsys, tmp_path, "rlhf_lora_tiny.yaml", "rlhf.reward_model=")
    assert (
        "stage 'rlhf' needs rlhf.reward_model (a run of `raftkit train` with stage 'reward')" in err
    )
    err = refused(capsys, tmp_path, "rlhf_lora_tiny.yaml", f"rlhf.reward_model={tmp_path / 'nope'}")
    assert "not a finished `raftkit train` run (needs run.json and model/)" in err


def test_rlhf_batch_must_hold_whole_groups(capsys, tmp_path, no_model_loading):
    err = refused(capsys, tmp_path, "rlhf_lora_tiny.yaml", "optim.batch_size=3")
    assert (
        "optim.batch_size x optim.grad_accum (3) must be a multiple of rlhf.num_generations (4)"
        in err
    )


def test_resume_without_checkpoint(capsys, tmp_path, no_model_loading):
    assert (
        main(
            [
                "train",
                "--config",
                str(RECIPES / "sft_lora_tiny.yaml"),
                "--set",
                f"output_dir={tmp_path}/run",
                "--resume",
            ]
        )
        == 2
    )
    assert f"--resume: no checkpoint-* folder in {tmp_path}/run" in capsys.readouterr().err


def test_mix_appends_closed_book_rows_to_train(tmp_path):
    dsf = tmp_path / "dsf_train.jsonl"
    dsf.write_text(
        json.dumps(
            {
                "prompt": [{"role": "user", "content": "Question: q?"}],
                "completion": [{"role": "assistant", "content": "<ANSWER>: a"}],
            }
        )
        + "\n"
    )
    cfg = load_config(str(RECIPES / "sft_lora_tiny.yaml"), [f"data.mix=[{dsf}]"])
    base = len(load_data(load_config(str(RECIPES / "sft_lora_tiny.yaml")))[0])
    train, _ = load_data(cfg)
    assert len(train) == base + 1
    assert train[-1]["completion"][0]["content"] == "<ANSWER>: a"


def test_mix_without_the_columns_is_refused(capsys, tmp_path, no_model_loading):
    data = tmp_path / "questions.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    err = refused(capsys, tmp_path, "sft_lora_tiny.yaml", f"data.mix=[{data}]")
    assert f"data.mix {data}: missing column(s) prompt, completion that data.path has" in err


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_weights_that_train_whole_stay_float32_under_bf16(device):
    """bf16 master weights would round away small updates: full fine-tuning and a reward model's
    score head keep float32 weights (autocast computes in bf16); a frozen LoRA base is bf16."""
    cfg = lambda recipe: load_config(
        str(RECIPES / recipe), [f"runtime.device={device}", "runtime.dtype=bfloat16"]
    )
    assert weight_dtype(cfg("sft_full.yaml")) == "float32"
    assert weight_dtype(cfg("reward_lora.yaml"), head="score") == "float32"
    assert weight_dtype(cfg("sft_lora.yaml")) == "bfloat16"
    assert weight_dtype(cfg("sft_qlora.yaml")) == "bfloat16"


def _sft_row(answer: str) -> dict:
    return {
        "prompt": [{"role": "user", "content": f"Question: {answer}?"}],
        "completion": [{"role": "assistant", "content": f"<ANSWER>: {answer}"}],
    }


def test_splits_of_other_names_load_by_train_split_and_eval_split(tmp_path):
    """data.train_split / data.eval_split: a save_to_disk DatasetDict whose splits are named
    otherwise (here `fit` and `holdout`) trains and evaluates on the splits they name."""
    from datasets import Dataset, DatasetDict

    from raftkit.errors import RaftkitError

    DatasetDict(
        {
            "fit": Dataset.from_list([_sft_row("a"), _sft_row("b")]),
            "holdout": Dataset.from_list([_sft_row("c")]),
        }
    ).save_to_disk(str(tmp_path / "ds"))
    recipe, data = str(RECIPES / "sft_lora_tiny.yaml"), [f"data.path={tmp_path / 'ds'}"]
    with pytest.raises(RaftkitError, match=r"no split 'train' \(has: fit, holdout\)$"):
        load_data(load_config(recipe, [*data, "data.eval_path="]))
    splits = ["data.train_split=fit", "data.eval_split=holdout", "data.eval_path="]
    train, evals = load_data(load_config(recipe, [*data, *splits]))
    assert [r["completion"][0]["content"] for r in train] == ["<ANSWER>: a", "<ANSWER>: b"]
    assert evals is not None, "the holdout split was not read"
    assert [r["completion"][0]["content"] for r in evals] == ["<ANSWER>: c"]


def test_optim_settings_reach_the_trainer_arguments(tmp_path):
    """optim.weight_decay, max_grad_norm and dataloader_workers are the TrainingArguments of the
    same names (weight_decay, max_grad_norm, dataloader_num_workers) that TRL trains with."""
    from trl import SFTConfig

    recipe = str(RECIPES / "sft_lora_tiny.yaml")
    cpu = [f"output_dir={tmp_path}", "runtime.device=cpu", "runtime.dtype=float32"]
    sets = ["optim.weight_decay=0.1", "optim.max_grad_norm=0.5", "optim.dataloader_workers=2"]
    args = trainer.trainer_args(load_config(recipe, [*cpu, *sets]), SFTConfig, has_eval=False)
    assert (args.weight_decay, args.max_grad_norm, args.dataloader_num_workers) == (0.1, 0.5, 2)
    default = trainer.trainer_args(load_config(recipe, cpu), SFTConfig, has_eval=False)
    assert (default.weight_decay, default.max_grad_norm, default.dataloader_num_workers) == (
        0.0,
        1.0,
        0,
    )
