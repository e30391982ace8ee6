"""Model names: offline aliases, local folders, run folders, HF ids, and clear errors otherwise."""

import json

import pytest

from raftkit import models
from raftkit.errors import RaftkitError


def test_offline_defaults_resolve_without_network():
    gen = models.resolve_path("smollm2-135m-instruct")
    assert json.loads(open(f"{gen}/config.json").read())["model_type"] == "llama"
    emb = models.resolve_embedder("all-minilm-l6-v2")
    assert (models.Path(emb) / "config.json").is_file() or (
        models.Path(emb) / "modules.json"
    ).is_file()


def test_local_folder_and_run_folder(tiny_llama, tmp_path):
    assert models.resolve_path(str(tiny_llama)) == str(tiny_llama)
    assert models.resolve(str(tiny_llama)) == models.ModelRef(
        str(tiny_llama), str(tiny_llama), str(tiny_llama)
    )
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    assert models.resolve_path(str(run)) == str(run / "model")


def test_unknown_names_list_what_is_available(tmp_path):
    with pytest.raises(
        RaftkitError,
        match=r"^unknown model 'gpt-9': use smollm2-135m-instruct, a local directory, "
        r"a `raftkit train` run, or a Hugging Face id",
    ):
        models.resolve_path("gpt-9")
    with pytest.raises(RaftkitError, match=r"^unknown embedder 'bert': use all-minilm-l6-v2, "):
        models.resolve_embedder("bert")


def test_a_bare_hub_id_is_never_downloaded(monkeypatch):
    import socket

    def no_network(self, address):
        raise AssertionError(f"connected to {address}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(
        RaftkitError,
        match=r"^model 'nobody/no-such-model' is not a local folder and not in the "
        r"Hugging Face cache; to download it from the Hub, write "
        r"hf://nobody/no-such-model$",
    ):
        models.resolve_path("nobody/no-such-model")


def test_runtime_auto_follows_the_cpu_flags(monkeypatch):
    from raftkit.config import RuntimeConfig

    for has_bf16, want in ((True, "bfloat16"), (False, "float32")):
        models._runtime.cache_clear()
        monkeypatch.setattr(models, "fast_bf16_cpu", lambda has_bf16=has_bf16: has_bf16)
        assert models.runtime(RuntimeConfig(device="cpu")).dtype == want
    assert (
        models.runtime(RuntimeConfig(device="cpu", dtype="float32")).dtype == "float32"
    )  # an explicit dtype wins
    models._runtime.cache_clear()


def test_lora_adapter_folder_loads_merged(tiny_llama, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    peft_model = get_peft_model(
        base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tiny_llama)
    cfg_path.write_text(json.dumps(cfg))
    ref = models.resolve(str(tmp_path / "adapter"))
    assert (ref.base, ref.adapter, ref.base_path) == (
        str(tiny_llama),
        str(tmp_path / "adapter"),
        str(tiny_llama),
    )
    merged = models.load_causal_lm(str(tmp_path / "adapter"), models.Runtime("cpu", "float32"))
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama)
    w_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(w_merged, plain.model.layers[0].self_attn.q_proj.weight)
    tok = models.load_tokenizer(str(tmp_path / "adapter"))
    assert tok.padding_side == "left" and tok.pad_token is not None
