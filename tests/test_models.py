"""Model names: offline aliases, local folders, run folders, HF ids, and clear errors otherwise."""

import json

import pytest

from raftkit import models
from raftkit.errors import RaftkitError


def test_offline_defaults_resolve_without_network():
    gen = models.resolve_generator("smollm2-135m-instruct")
    assert json.loads(open(f"{gen}/config.json").read())["model_type"] == "llama"
    emb = models.resolve_embedder("all-minilm-l6-v2")
    assert (models.Path(emb) / "config.json").is_file() or (models.Path(emb) / "modules.json").is_file()


def test_local_folder_and_run_folder(tiny_llama, tmp_path):
    assert models.resolve_generator(str(tiny_llama)) == str(tiny_llama)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    assert models.resolve_generator(str(run)) == str(run / "model")


def test_unknown_names_list_what_is_available(tmp_path):
    with pytest.raises(RaftkitError, match=r"^unknown model 'gpt-9': use smollm2-135m-instruct, a local "
                                           r"directory or a Hugging Face id \(org/name\)$"):
        models.resolve_generator("gpt-9")
    with pytest.raises(RaftkitError, match=r"^unknown embedder 'bert': use all-minilm-l6-v2, "):
        models.resolve_embedder("bert")


def test_uncached_hf_id_offline_is_a_clear_error():
    with pytest.raises(RaftkitError, match=r"^model 'nobody/no-such-model' is not in the Hugging Face cache "
                                           r"and HF_HUB_OFFLINE=1$"):
        models.resolve_generator("nobody/no-such-model")


def test_lora_adapter_folder_loads_merged(tiny_llama, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tiny_llama)
    cfg_path.write_text(json.dumps(cfg))
    merged = models.load_causal_lm(str(tmp_path / "adapter"), "cpu")
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama)
    w_merged = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(w_merged, plain.model.layers[0].self_attn.q_proj.weight)
    tok = models.load_tokenizer(str(tmp_path / "adapter"))
    assert tok.padding_side == "left" and tok.pad_token is not None
