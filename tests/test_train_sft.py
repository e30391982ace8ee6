"""SFT end to end on the tiny random Llama: the tiny recipes run, weights move, the run folder is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raftkit.cli import main

RECIPES = Path(__file__).parents[1] / "recipes"
TRAIN_ASSETS = Path(__file__).parent / "assets" / "train"


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_trained(run: Path, base: Path) -> None:
    """Trainable parameters changed: LoRA B matrices left zero init, or full weights differ from the base."""
    model = run / "model"
    if (model / "adapter_config.json").is_file():
        lora_b = {k: v for k, v in tensors(model / "adapter_model.safetensors").items() if "lora_B" in k}
        assert lora_b, "adapter holds no lora_B weights"
        assert any(v.abs().sum() > 0 for v in lora_b.values()), "LoRA B matrices are still zero: nothing trained"
        assert json.loads((model / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    else:
        new, old = tensors(model / "model.safetensors"), tensors(base / "model.safetensors")
        shared = [k for k in new if k in old and new[k].shape == old[k].shape]
        assert shared and any(not new[k].equal(old[k]) for k in shared), "full weights unchanged"


def assert_run_folder(run: Path, stage: str, method: str) -> dict:
    for name in ("config.yaml", "metrics.jsonl", "loss.png", "run.json", "model"):
        assert (run / name).exists(), f"{name} missing from the run folder"
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((run / "run.json").read_text())
    assert (summary["stage"], summary["method"]) == (stage, method)
    assert summary["steps"] > 0 and summary["tokens"] > 0 and summary["tokens_per_s"] > 0
    assert summary["peak_mem_mb"] > 0 and summary["wall_s"] > 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in m for m in metrics)
    return summary


def train_tiny(recipe: str, tiny_llama: Path, run: Path, *extra: str) -> int:
    return main(["train", "--config", str(RECIPES / recipe), "--set", f"model={tiny_llama}",
                 "--set", f"output_dir={run}", *[a for x in extra for a in ("--set", x)]])


@pytest.mark.parametrize("method", ["lora", "full", "qlora"])
def test_sft_tiny_recipes_train(method, tiny_llama, tmp_path):
    run = tmp_path / "run"
    assert train_tiny(f"sft_{method}_tiny.yaml", tiny_llama, run, "optim.max_steps=3", "optim.save_steps=2") == 0
    summary = assert_run_folder(run, "sft", method)
    assert summary["steps"] == 3
    assert_trained(run, tiny_llama)


def test_sft_resume_and_overwrite(tiny_llama, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2", "optim.save_steps=1") == 0
    # the same command again must not clobber the run
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2") == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    # --resume continues from checkpoint-2 up to the new max_steps
    rc = main(["train", "--config", str(RECIPES / "sft_lora_tiny.yaml"), "--set", f"model={tiny_llama}",
               "--set", f"output_dir={run}", "--set", "optim.max_steps=3", "--set", "optim.save_steps=1", "--resume"])
    assert rc == 0
    summary = json.loads((run / "run.json").read_text())
    assert summary["steps"] == 3 and summary["resumed"] is True
    assert (run / "checkpoint-3").is_dir()
    # --overwrite starts afresh
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=1") == 2  # still refused
    rc = main(["train", "--config", str(RECIPES / "sft_lora_tiny.yaml"), "--set", f"model={tiny_llama}",
               "--set", f"output_dir={run}", "--set", "optim.max_steps=1", "--overwrite"])
    assert rc == 0
    assert json.loads((run / "run.json").read_text())["steps"] == 1
    assert not (run / "checkpoint-3").exists()


def test_sft_loss_is_on_the_answer_only(tiny_llama, tokenizer):
    """The labels SFTTrainer trains on cover the assistant answer, never the documents of the prompt."""
    from trl import SFTConfig, SFTTrainer

    from raftkit import atomic
    from raftkit.train.common import load_data, load_model
    from raftkit.train.run import load_config

    cfg = load_config(str(RECIPES / "sft_lora_tiny.yaml"), [f"model={tiny_llama}", "output_dir=/nonexistent"])
    train, _ = load_data(cfg)
    model, tok, _ = load_model(cfg)
    args = SFTConfig(output_dir="/tmp/unused", use_cpu=True, bf16=False, report_to="none", max_length=1024,
                     completion_only_loss=True, packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train.select(range(2)), processing_class=tok)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    answer = tok.decode(labels[labels != -100])
    row = atomic.read_jsonl(TRAIN_ASSETS / "raft_train.jsonl")[0]
    assert row["completion"][0]["content"] in answer
    assert "<DOCUMENT>" not in answer and "Question:" not in answer


def test_same_seed_same_weights_other_seed_other_weights(tiny_llama, tmp_path):
    """The seed covers the LoRA initialisation too, not only what the Trainer draws."""
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert train_tiny("sft_lora_tiny.yaml", tiny_llama, tmp_path / name, "optim.max_steps=2",
                          "optim.save_steps=1000", f"seed={seed}") == 0
        runs[name] = tensors(tmp_path / name / "model" / "adapter_model.safetensors")
    assert runs["a"].keys() == runs["b"].keys()
    assert all(runs["a"][k].equal(runs["b"][k]) for k in runs["a"])
    assert any(not runs["a"][k].equal(runs["c"][k]) for k in runs["a"])
