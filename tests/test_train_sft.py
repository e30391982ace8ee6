"""SFT end to end on the tiny random Llama: the tiny recipes run, weights move, the run folder is
complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECIPES = Path(__file__).parents[1] / "recipes"
TRAIN_ASSETS = Path(__file__).parent / "assets" / "train"


@pytest.mark.parametrize("method", ["lora", "full", "qlora"])
def test_sft_tiny_recipes_train(
    method, tiny_llama, tmp_path, train_tiny, assert_run_folder, assert_trained
):
    run = tmp_path / "run"
    assert (
        train_tiny(
            f"sft_{method}_tiny.yaml", tiny_llama, run, "optim.max_steps=3", "optim.save_steps=2"
        )
        == 0
    )
    summary = assert_run_folder(run, "sft", method)
    assert summary["steps"] == 3
    assert_trained(run, tiny_llama)


@pytest.mark.parametrize(
    "method,trained", [("lora", "float32"), ("full", "float32"), ("qlora", "bfloat16")]
)
def test_bf16_training_keeps_float32_master_weights(
    method, trained, tiny_llama, tmp_path, train_tiny
):
    """Under a bf16 runtime the trained weights (adapters, or the whole model) stay float32: bf16
    weights would round small updates away. QLoRA's adapters are the exception TRL makes on
    purpose, after the QLoRA paper: bf16, like the dequantized base they are added to."""
    run = tmp_path / "run"
    sets = ("optim.max_steps=1", "runtime.dtype=bfloat16")
    assert train_tiny(f"sft_{method}_tiny.yaml", tiny_llama, run, *sets) == 0
    precision = json.loads((run / "run.json").read_text())["precision"]
    assert precision.startswith(f"bfloat16 autocast; trained weights {trained}"), precision


def test_sft_resume_and_overwrite(tiny_llama, tmp_path, capsys, train_tiny):
    run = tmp_path / "run"
    assert (
        train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2", "optim.save_steps=1")
        == 0
    )
    # the same command again must not clobber the run
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2") == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    # --resume continues from checkpoint-2 up to the new max_steps
    rc = train_tiny(
        "sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=3", "optim.save_steps=1", "--resume"
    )
    assert rc == 0
    summary = json.loads((run / "run.json").read_text())
    assert summary["steps"] == 3 and summary["resumed"] is True
    assert (run / "checkpoint-3").is_dir()
    # --overwrite starts afresh
    assert (
        train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=1") == 2
    )  # still refused
    rc = train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=1", "--overwrite")
    assert rc == 0
    assert json.loads((run / "run.json").read_text())["steps"] == 1
    assert not (run / "checkpoint-3").exists()


def test_training_screen_shows_a_bar_with_the_loss_not_log_dicts(
    tiny_llama, tmp_path, capfd, train_tiny, monkeypatch
):
    """What a user's terminal shows: the progress bar (with the loss on it), never the Trainer's
    per-step dicts; the losses are in metrics.jsonl."""
    monkeypatch.delenv("RAFTKIT_QUIET", raising=False)
    run = tmp_path / "run"
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2") == 0
    out, err = capfd.readouterr()
    assert "{'loss'" not in out + err and "'train_runtime'" not in out + err
    assert "2/2" in err and "loss=" in err  # the bar ran to the end, the loss beside it
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sum("loss" in r for r in logged) == 2


def _sft_trainer(tiny_llama, tmp_path, *sets):
    from raftkit.train.run import load_config
    from raftkit.train.stages.sft import sft_trainer

    cfg = load_config(
        str(RECIPES / "sft_lora_tiny.yaml"),
        [f"model={tiny_llama}", f"output_dir={tmp_path}/run", "runtime.dtype=float32", *sets],
    )
    return sft_trainer(cfg)


def test_raftkit_sft_trainer_trains_on_the_answer_only(tiny_llama, tmp_path):
    """The batches raftkit's SFT trainer feeds: packed rows whose labels cover the answers, never
    the documents."""
    from raftkit import files
    from raftkit.train.cpu import packed_attention

    trainer, tok, _ = _sft_trainer(tiny_llama, tmp_path, "data.max_length=2048")
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1  # on CPU: one packed row per micro-batch
    assert trainer.model.config._attn_implementation == packed_attention.NAME
    # the examples' bounds, which the CPU trainer's attention runs by
    assert batch["cu_seq_lens_q"].tolist()[-1] == batch["input_ids"].shape[1]
    labels = batch["labels"][0]
    answers = tok.decode(labels[labels != -100])
    rows = files.read_jsonl(TRAIN_ASSETS / "raft_train.jsonl")
    assert any(r["completion"][0]["content"] in answers for r in rows)
    assert "<DOCUMENT>" not in answers and "Question:" not in answers
    assert len(trainer.train_dataset) < len(rows)  # whole examples packed best-fit into fewer rows


def test_cpu_trainer_loss_equals_trls_on_the_same_batch(tiny_llama, tmp_path):
    """The CPU trainer's plain cross-entropy is TRL's loss, not an approximation of it."""
    import torch
    from trl import SFTTrainer

    trainer, _, _ = _sft_trainer(tiny_llama, tmp_path)
    assert type(trainer) is not SFTTrainer and isinstance(trainer, SFTTrainer)
    batch = next(iter(trainer.get_train_dataloader()))
    n = int((batch["labels"] != -100).sum())
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n)
        theirs = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch), num_items_in_batch=n)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-4)


def test_cpu_kernels_off_trains_with_plain_peft_and_trl_to_the_same_losses(
    tiny_llama, tmp_path, train_tiny
):
    """`runtime.cpu_kernels: off` switches every CPU speed-up off (peft's own LoRA layers, TRL's
    trainer and batches, the model's attention) and trains to the same losses."""
    from peft.tuners.lora import Linear
    from trl import SFTTrainer

    trainer, _, _ = _sft_trainer(tiny_llama, tmp_path, "runtime.cpu_kernels=off")
    # the recipe's batch as it is (on, a CPU run feeds one packed row per micro-batch)
    assert type(trainer) is SFTTrainer and trainer.args.per_device_train_batch_size == 2
    assert trainer.model.config._attn_implementation != "raftkit_packed_sdpa"
    lora = next(m for m in trainer.model.modules() if isinstance(m, Linear))
    assert "forward" not in vars(lora)  # peft's own forward, not raftkit's
    losses = {}
    for kernels in ("auto", "off"):
        run = tmp_path / kernels
        sets = ("optim.max_steps=3", "runtime.dtype=float32", f"runtime.cpu_kernels={kernels}")
        assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, *sets) == 0
        logged = (run / "metrics.jsonl").read_text().splitlines()
        losses[kernels] = [json.loads(r)["loss"] for r in logged if '"loss"' in r]
    assert len(losses["off"]) == 3
    assert losses["off"] == pytest.approx(losses["auto"], rel=2e-3)


def test_bf16_runtime_trains_float32_adapters_on_a_bf16_base(
    tiny_llama, tmp_path, train_tiny, read_tensors
):
    run = tmp_path / "run"
    assert (
        train_tiny(
            "sft_lora_tiny.yaml", tiny_llama, run, "optim.max_steps=2", "runtime.dtype=bfloat16"
        )
        == 0
    )
    summary = json.loads((run / "run.json").read_text())
    assert (summary["dtype"], summary["precision"]) == (
        "bfloat16",
        "bfloat16 autocast; trained weights float32, frozen weights bfloat16",
    )
    weights = read_tensors(run / "model" / "adapter_model.safetensors")
    assert {str(w.dtype) for w in weights.values()} == {"torch.float32"}


def test_same_seed_same_weights_other_seed_other_weights(
    tiny_llama, tmp_path, train_tiny, read_tensors
):
    """The seed covers the LoRA initialisation too, not only what the Trainer draws."""
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert (
            train_tiny(
                "sft_lora_tiny.yaml",
                tiny_llama,
                tmp_path / name,
                "optim.max_steps=2",
                "optim.save_steps=1000",
                f"seed={seed}",
            )
            == 0
        )
        runs[name] = read_tensors(tmp_path / name / "model" / "adapter_model.safetensors")
    assert runs["a"].keys() == runs["b"].keys()
    assert all(runs["a"][k].equal(runs["b"][k]) for k in runs["a"])
    assert any(not runs["a"][k].equal(runs["c"][k]) for k in runs["a"])


def test_lora_under_autocast_casts_less_and_sums_in_float32(tiny_llama):
    """Under autocast raftkit turns off peft's cast of each LoRA input to float32 (the adapter's
    matmul undoes it) and adds the adapter's delta to a float32 copy of the frozen bf16 output, so
    a delta far below bf16's resolution of that output survives; outside autocast the layers are
    peft's own. The logits agree."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    from raftkit.train.model import load_model
    from raftkit.train.run import load_config

    cfg = load_config(
        str(RECIPES / "sft_lora_tiny.yaml"),
        [f"model={tiny_llama}", "runtime.device=cpu", "runtime.dtype=bfloat16"],
    )
    model, tok, _ = load_model(cfg)
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    assert layers
    seen = {}
    layers[0].register_forward_hook(lambda m, args, out: seen.update(x=args[0], out=out))
    with torch.no_grad():
        torch.nn.init.normal_(layers[0].lora_B["default"].weight)  # an adapter that does something
    ids = tok("Mount Skarn is tall.", return_tensors="pt")["input_ids"]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(input_ids=ids).logits.float()
    assert {m.cast_input_dtype_enabled for m in layers} == {False}
    assert seen["out"].dtype == torch.float32
    with torch.no_grad():
        plain = model(input_ids=ids).logits.float()
    assert {m.cast_input_dtype_enabled for m in layers} == {True}
    assert seen["out"].dtype == torch.bfloat16  # peft's own: the frozen bf16 layer's dtype
    assert torch.allclose(low, plain, atol=0.05)

    # a delta of ~1e-4 of the frozen output: kept whole in float32, rounded away in bf16
    with torch.no_grad():
        layers[0].lora_B["default"].weight.mul_(1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids)
            x, out = seen["x"], seen["out"]
            frozen = layers[0].get_base_layer()(x).float()
        lora = layers[0]
        delta = lora.lora_B["default"](lora.lora_A["default"](x.float())) * lora.scaling["default"]
    assert delta.abs().max() < 1e-3 * frozen.abs().max()
    close = dict(rtol=0.02, atol=0.02 * float(delta.abs().max()))  # the adapter's bf16 matmuls
    assert torch.allclose(out - frozen, delta, **close)
    in_bf16 = (frozen.bfloat16() + delta.bfloat16()).float() - frozen
    assert not torch.allclose(in_bf16, delta, **close)
