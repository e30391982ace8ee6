"""Every YAML in recipes/ loads and validates against its schema, and its first line is the command
that runs it (STYLE.md: one recipe = one YAML whose first comment line is the exact command)."""

from pathlib import Path

import pytest
import yaml

from raftkit import config

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def schema(path: Path):
    """The config class a recipe file is read into, chosen by its name prefix."""
    name = path.name
    if name.startswith("index_"):
        from raftkit.retrieval.config import RaftkitConfig

        return RaftkitConfig
    if name.startswith("raft_build"):
        from raftkit.raft.config import RaftBuildConfig

        return RaftBuildConfig
    if name.startswith("compare"):
        from raftkit.compare.config import CompareConfig

        return CompareConfig
    from raftkit.train.stages import registry

    if path.stem.split("_")[0] in registry():
        from raftkit.train.config import TrainConfig

        return TrainConfig
    raise AssertionError(f"no schema known for recipe {name}: name it <stage>_<method>[_tiny].yaml")


ALL = sorted(p for p in RECIPES.glob("*.yaml"))


def test_every_training_stage_has_recipes_and_a_cpu_smoke_recipe():
    from raftkit.train.stages import registry

    names = {p.stem for p in ALL}
    for stage in registry():
        mine = [n for n in names if n.split("_")[0] == stage]
        assert mine and any(n.endswith("_tiny") for n in mine), (
            f"stage {stage} needs recipes, one of them _tiny"
        )


def test_recipes_exist_for_every_stage():
    names = {p.stem for p in ALL}
    for needed in (
        "sft_full_tiny",
        "sft_lora_tiny",
        "sft_qlora_tiny",
        "dpo_lora_tiny",
        "reward_full_tiny",
        "rlhf_lora_tiny",
        "raft_build",
        "compare_tiny",
        "index_flat",
    ):
        assert needed in names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_recipe_loads_and_names_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# raftkit "), (
        f"{path.name}: first line must be the command that runs it"
    )
    assert f"recipes/{path.name}" in first
    config.load(schema(path), path)  # raises ConfigError listing every problem


@pytest.mark.parametrize("path", sorted(RECIPES.glob("accelerate/*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_are_valid_yaml_with_a_distributed_type(path):
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in ("FSDP", "DEEPSPEED", "MULTI_GPU")
    first = path.read_text().splitlines()[0]
    assert first.startswith("# raftkit train --config recipes/")
    assert f"--launcher accelerate --accelerate-config recipes/accelerate/{path.name}" in first
