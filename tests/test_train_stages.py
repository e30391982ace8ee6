"""DPO, reward model, RLHF and export on the tiny random Llama: each tiny recipe runs, weights move,
and the pieces connect (SFT run -> DPO, reward run -> RLHF, LoRA run -> merged model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkit.cli import main


@pytest.fixture(scope="module")
def sft_run(tiny_llama, tmp_path_factory, train_tiny) -> Path:
    run = tmp_path_factory.mktemp("sft") / "run"
    assert (
        train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2", "data.eval_path=")
        == 0
    )
    return run


@pytest.fixture(scope="module")
def reward_run(tiny_llama, tmp_path_factory, train_tiny) -> Path:
    run = tmp_path_factory.mktemp("reward") / "run"
    assert train_tiny("reward_full_tiny.yaml", tiny_llama, run, "optim.max_steps=2") == 0
    return run


def test_dpo_tiny_continues_the_sft_adapter(
    sft_run, tiny_llama, tmp_path, assert_run_folder, assert_trained, train_tiny, read_tensors
):
    run = tmp_path / "dpo"
    assert (
        train_tiny("dpo_lora_tiny.yaml", sft_run, run, "optim.max_steps=2", "data.eval_path=") == 0
    )
    assert_run_folder(run, "dpo", "lora")
    assert_trained(run, tiny_llama)  # the adapter still points at the original base
    before = read_tensors(sft_run / "model" / "adapter_model.safetensors")
    after = read_tensors(run / "model" / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not after[k].equal(before[k]) for k in after), "DPO left the SFT adapter unchanged"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/margins" in m for m in metrics)


def test_reward_full_tiny(reward_run, tiny_llama, assert_run_folder, assert_trained):
    summary = assert_run_folder(reward_run, "reward", "full")
    assert summary["steps"] == 2
    assert_trained(reward_run, tiny_llama)
    config = json.loads((reward_run / "model" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert len(config["id2label"]) == 1  # one score per answer


def test_reward_lora_tiny_loads_as_one_scorer(
    tiny_llama, tmp_path, tokenizer, assert_run_folder, assert_trained, train_tiny
):
    import torch

    from raftkit.models import Runtime, load_classifier

    run = tmp_path / "reward_lora"
    assert (
        train_tiny("reward_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2", "data.eval_path=")
        == 0
    )
    assert_run_folder(run, "reward", "lora")
    assert_trained(run, tiny_llama)
    model, tok = load_classifier(str(run), Runtime("cpu", "float32"))
    assert not hasattr(model, "peft_config")  # merged: GRPO gets a plain classifier
    with torch.no_grad():
        scores = model(
            **tok(["a grounded answer", "an ungrounded one"], return_tensors="pt", padding=True)
        ).logits
    assert scores.shape == (2, 1)


def test_rlhf_tiny_with_reward_model_and_rule_rewards(
    reward_run, tiny_llama, tmp_path, assert_run_folder, assert_trained, train_tiny
):
    run = tmp_path / "rlhf"
    assert (
        train_tiny(
            "rlhf_lora_tiny.yaml",
            tiny_llama,
            run,
            f"rlhf.reward_model={reward_run}",
            "optim.max_steps=1",
            "rlhf.max_completion_length=12",
        )
        == 0
    )
    assert_run_folder(run, "rlhf", "lora")
    assert_trained(run, tiny_llama)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    logged = set().union(*metrics)
    for name in ("quote_reward", "format_reward", "answer_reward"):
        assert f"rewards/{name}/mean" in logged
    assert any(
        k.startswith("rewards/") and k.endswith("/mean") and "_reward" not in k for k in logged
    )


def test_rlhf_refuses_a_run_that_is_not_a_reward_model(sft_run, capsys, tmp_path):
    assert (
        main(
            [
                "train",
                "--config",
                "recipes/rlhf_lora_tiny.yaml",
                "--set",
                f"output_dir={tmp_path}/r",
                "--set",
                f"rlhf.reward_model={sft_run}",
            ]
        )
        == 2
    )
    assert "is a 'sft' run, not a 'reward' run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_export_merges_the_adapter(sft_run, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM

    from raftkit import models

    out = tmp_path / "merged"
    assert main(["export", str(sft_run), "--merge", "--out", str(out)]) == 0
    assert not (out / "adapter_config.json").exists() and (out / "model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    reference = models.load_causal_lm(
        str(sft_run), models.Runtime("cpu", "float32")
    )  # merged by peft in memory
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, reference(ids).logits, atol=1e-4)
    # an existing output is kept, a full run has nothing to merge, a missing run is named
    assert main(["export", str(sft_run), "--merge", "--out", str(out)]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--merge", "--out", str(tmp_path / "o")]) == 2
    assert "not a finished `raftkit train` run" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_refuses_merging_a_full_run(reward_run, tmp_path, capsys):
    assert main(["export", str(reward_run), "--merge", "--out", str(tmp_path / "o")]) == 2
    assert "holding a full model, not a LoRA adapter: nothing to merge" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
