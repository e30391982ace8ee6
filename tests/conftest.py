"""Shared fixtures: offline settings, the real SmolLM2 tokenizer, a tiny random Llama, a small
index."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download
os.environ["RAFTKIT_QUIET"] = "1"  # no progress bars in test logs
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# `make test` runs pytest-xdist workers side by side: each gets its share of the cores (set before
# torch is imported), or the workers' thread pools fight over them and the suite gets slower.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

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
    """A randomly initialised 2-layer Llama (hidden 64) with the real tokenizer, saved as a model
    folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
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
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.retrieval.indexing import build_index

    root = tmp_path_factory.mktemp("indexes")
    cfg = config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={root}"])
    return build_index(docs_dir, "assets", cfg)


@pytest.fixture
def docs_copy(tmp_path, docs_dir) -> Path:
    """A writable copy of tests/assets/docs."""
    dst = tmp_path / "docs"
    shutil.copytree(docs_dir, dst)
    return dst


# ------------------------------------------------------------------------ compare: a stub generator
from raftkit import prompts  # noqa: E402
from raftkit.generate import Answer  # noqa: E402

QA = "tests/assets/compare/qa.jsonl"
# Hand-made replies per (mode, question id); the expected metrics below are computed from these by
# hand.
CLOSED = {
    "c-01": "<ANSWER>: 2,000 metres",
    "c-02": "<ANSWER>: I don't know.",
    "c-03": "<ANSWER>: 12",
    "c-04": "<ANSWER>: 10 books",
    "c-05": (
        f"{prompts.BEGIN_QUOTE} Piet Haldor founded it {prompts.END_QUOTE}\n<ANSWER>: Piet Haldor"
    ),
    "c-06": "<ANSWER>: 212 kilometres",
    "c-07": "<ANSWER>: Anna Vell",
    "c-08": "<ANSWER>: Sundays",
}
RAG = {
    "c-01": (
        f"{prompts.BEGIN_QUOTE}The tallest, Mount Skarn, rises 3,412 metres{prompts.END_QUOTE}\n"
        "<ANSWER>: 3,412 metres"
    ),
    "c-02": "<ANSWER>: Gustav",
    "c-03": "<ANSWER>: 14",
    "c-04": "<ANSWER>: 12 books",
    "c-05": f"{prompts.BEGIN_QUOTE}founded by a wizard{prompts.END_QUOTE}\n<ANSWER>: Piet Haldor",
    "c-06": f"<ANSWER>: {prompts.ABSTAIN}",
    "c-07": f"<ANSWER>: {prompts.ABSTAIN}",
    "c-08": "<ANSWER>: Mondays",
}
# The choice each mode's log-likelihood favours.
PICKS = {
    False: {"c-01": "1,987 metres", "c-03": "12", "c-05": "Piet Haldor"},
    True: {"c-01": "3,412 metres", "c-03": "14", "c-05": "Piet Haldor"},
}


class CompareStub:
    """A generator answering from the tables above; optionally interrupted after `fail_after` chat
    calls."""

    def __init__(self, cfg, fail_after=None):
        self.cfg, self.fail_after, self.asked = cfg, fail_after, []
        self.by_question = {
            json.loads(line)["question"]: json.loads(line)["id"] for line in open(QA)
        }

    def _key(self, conv):
        return conv[0]["content"] == prompts.SYSTEM_RAG, self.by_question[
            conv[-1]["content"].rsplit("Question: ", 1)[1].split("\n")[0]
        ]

    def answer(self, conversations, choices=None, after_reply=False, desc="", max_new_tokens=None):
        if self.fail_after is not None and len(self.asked) >= self.fail_after:
            raise KeyboardInterrupt
        self.asked.append([self._key(c)[1] for c in conversations])
        out = []
        for conv, options in zip(conversations, choices or [[]] * len(conversations)):
            rag, qid = self._key(conv)
            logliks = [0.0 if c == PICKS[rag].get(qid) else -1.0 for c in options] or None
            out.append(Answer((RAG if rag else CLOSED)[qid], logliks))
        return out


def make_compare_cfg(built_index, **extra):
    from raftkit import config
    from raftkit.compare.config import CompareConfig

    data = {
        "systems": [
            {"name": "base", "model": "stub", "mode": "closed"},
            {"name": "base+rag", "model": "stub", "mode": "rag", "index": "assets", "top_k": 3},
        ],
        "questions": {"path": QA},
        "indexes_dir": str(built_index.path.parent),
        "generation": {"batch_size": 1},
        "scoring": {"ragas": False},
        "bootstrap": {"samples": 200},
    }
    for section, values in extra.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return config.load(CompareConfig, data=data)


@pytest.fixture
def stub_generator():
    """A generator class answering the compare QA from hand-made tables (see CompareStub)."""
    return CompareStub


@pytest.fixture
def compare_cfg():
    """compare_cfg(built_index, **sections): a two-system CompareConfig over
    tests/assets/compare/qa.jsonl."""
    return make_compare_cfg


# ------------------------------------------------------------------------ training: runs and checks
RECIPES = Path(__file__).parents[1] / "recipes"


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _train_argv(recipe: str, model: Path, run: Path, *extra: str) -> list[str]:
    """`raftkit train` arguments for a recipe with model/output_dir set; each extra is a flag
    (`--resume`) or a key=value for --set."""
    return [
        "train",
        "--config",
        str(RECIPES / recipe),
        "--set",
        f"model={model}",
        "--set",
        f"output_dir={run}",
        *[a for x in extra for a in ([x] if x.startswith("--") else ["--set", x])],
    ]


def _train_tiny(recipe: str, model: Path, run: Path, *extra: str) -> int:
    from raftkit.cli import main

    return main(_train_argv(recipe, model, run, *extra))


def _assert_trained(run: Path, base: Path) -> None:
    """Trainable parameters changed: LoRA B matrices left zero init, or full weights differ from the
    base."""
    model = run / "model"
    if (model / "adapter_config.json").is_file():
        lora_b = {
            k: v for k, v in tensors(model / "adapter_model.safetensors").items() if "lora_B" in k
        }
        assert lora_b, "adapter holds no lora_B weights"
        assert any(v.abs().sum() > 0 for v in lora_b.values()), (
            "LoRA B matrices are still zero: nothing trained"
        )
        assert json.loads((model / "adapter_config.json").read_text())[
            "base_model_name_or_path"
        ] == str(base)
    else:
        new, old = tensors(model / "model.safetensors"), tensors(base / "model.safetensors")
        shared = [k for k in new if k in old and new[k].shape == old[k].shape]
        assert shared and any(not new[k].equal(old[k]) for k in shared), "full weights unchanged"


def _assert_run_folder(run: Path, stage: str, method: str) -> dict:
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


@pytest.fixture(scope="session")
def train_tiny():
    """train_tiny(recipe, model, run, *extra) -> exit code of `raftkit train` on a recipe with
    model/output_dir set (extra: key=value sets and --flags)."""
    return _train_tiny


@pytest.fixture(scope="session")
def train_argv():
    """train_argv(recipe, model, run, *extra) -> the argument list train_tiny runs."""
    return _train_argv


@pytest.fixture(scope="session")
def assert_trained():
    return _assert_trained


@pytest.fixture(scope="session")
def assert_run_folder():
    return _assert_run_folder


@pytest.fixture(scope="session")
def read_tensors():
    return tensors


# ------------------------------------------------------------- index: a model-free embedder
class HashEmbedder:
    """Stands in for the sentence embedder where vectors do not matter (index history, probes):
    hashed words, unit length, no model loaded."""

    dimension = 64

    def __init__(self, *args):
        pass

    def encode(self, texts, progress=False):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % self.dimension] += 1.0
            out[i, 0] += 1e-3  # never the zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def hash_embedder(monkeypatch):
    """Indexes built or updated in this test embed with HashEmbedder (no model)."""
    import raftkit.retrieval.index as index_module

    monkeypatch.setattr(index_module, "Embedder", HashEmbedder)
    return HashEmbedder


# ------------------------------------------------------------------------ loopback servers
from http.server import BaseHTTPRequestHandler  # noqa: E402


class JsonHandler(BaseHTTPRequestHandler):
    """Base of the tests' loopback OpenAI-style servers: JSON replies, no request log on stderr."""

    def _json(self, code: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass
