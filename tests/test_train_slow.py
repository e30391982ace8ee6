"""The real SmolLM2-135M-Instruct learns from RAFT data with LoRA: a few steps and the loss
falls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkit.cli import main

RECIPES = Path(__file__).parents[1] / "recipes"


@pytest.mark.slow
def test_lora_on_the_real_135m_model_lowers_the_loss(tmp_path):
    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "--config",
            str(RECIPES / "sft_lora_tiny.yaml"),
            "--set",
            f"output_dir={run}",
            "--set",
            "model=smollm2-135m-instruct",
            "--set",
            "data.eval_path=",
            "--set",
            "optim.max_steps=6",
            "--set",
            "optim.batch_size=1",
            "--set",
            "data.max_length=256",
            "--set",
            "optim.lr=0.001",
            "--set",
            "optim.save_steps=100",
        ]
    )
    assert rc == 0
    losses = [
        m["loss"]
        for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "loss" in m
    ]
    assert len(losses) == 6
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.8 * first, f"loss did not fall: {losses}"
    summary = json.loads((run / "run.json").read_text())
    assert summary["base_model"] == "smollm2-135m-instruct" and summary["tokens_per_s"] > 0
    adapter = json.loads((run / "model" / "adapter_config.json").read_text())
    assert (
        adapter["base_model_name_or_path"] == "smollm2-135m-instruct"
    )  # resolvable on any machine
