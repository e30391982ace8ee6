"""Shared fixtures: offline settings, the real SmolLM2 tokenizer, a tiny random Llama, a small index."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download
os.environ["RAFTKIT_QUIET"] = "1"  # no progress bars in test logs
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from raftkit.ui import quiet_libraries  # noqa: E402

quiet_libraries()

ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(scope="session")
def assets() -> Path:
    return ASSETS


@pytest.fixture(scope="session")
def tokenizer():
    """The real SmolLM2-135M-Instruct tokenizer (from the offline GGUF, converted once)."""
    from raftkit.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised 2-layer Llama (hidden 64) with the real tokenizer, saved as a model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def docs_dir() -> Path:
    """tests/assets/docs: five small documents in five formats, plus one broken PDF."""
    return ASSETS / "docs"


@pytest.fixture(scope="session")
def built_index(tmp_path_factory, docs_dir):
    """An index of tests/assets/docs built once per session; tests must not modify it."""
    from raftkit import config
    from raftkit.retrieval.index import build_index

    root = tmp_path_factory.mktemp("indexes")
    cfg = config.load(config.RaftkitConfig, overrides=[f"retrieval.indexes_dir={root}"])
    return build_index(docs_dir, "assets", cfg)


@pytest.fixture
def docs_copy(tmp_path, docs_dir) -> Path:
    """A writable copy of tests/assets/docs."""
    dst = tmp_path / "docs"
    shutil.copytree(docs_dir, dst)
    return dst
