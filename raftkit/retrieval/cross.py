"""A cross-encoder's reading of (question, chunk) pairs: the evidence verifier's feature `cross`.

The verifier's other features compare the question and the chunk word by word; a cross-encoder
reads them together. Any sequence-classification model works by name (a Hugging Face id,
`hf://org/name`, a local folder, e.g. `cross-encoder/ms-marco-MiniLM-L6-v2`): its logit for the
pair is the feature (for a 2-label model the second label's log-odds, for an NLI model
entailment's). The verifier stage can fine-tune one on its pairs (raftkit/train/cross_encoder.py),
from such a model or from an encoder without a classification head (the shipped
`all-minilm-l6-v2`), which then gets a new one-logit head. The run keeps the model it scores with
in RUN/cross-encoder, so it travels.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from raftkit.errors import RaftkitError

FOLDER = "cross-encoder"  # in the verifier run
MAX_LENGTH = 256  # question + a 192-token chunk
BATCH = 16


def source(name: str) -> str:
    """A local folder for cross-encoder (or encoder) `name`: the offline embedder's names and
    every model name raftkit takes elsewhere."""
    from raftkit.models import EMBEDDERS, resolve_embedder, resolve_path

    return resolve_embedder(name) if name in EMBEDDERS else resolve_path(name)


def read_by(head: dict) -> bool:
    """Whether a verifier head (verifier.json), or its options head, reads the feature `cross`."""
    return any("cross" in h["features"] for h in (head, head.get("options")) if h)


def has_head(path: str) -> bool:
    """Whether the model at `path` carries a trained sequence-classification head."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    archs = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in archs)


class CrossScorer:
    """Scores (question, chunk) pairs with the cross-encoder at `path`; each pair once."""

    def __init__(self, path: str, runtime, new_head: bool = False):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from raftkit.models import quiet_transformers

        quiet_transformers()
        if not new_head and not has_head(path):
            raise RaftkitError(
                f"cross-encoder {path} has no trained classification head: fine-tune it with "
                "verifier.cross_encoder_epochs, or name a cross-encoder"
            )
        self.runtime, self.cache = runtime, {}
        kwargs = {"num_labels": 1} if new_head else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            # float32 weights whatever the checkpoint holds: training needs float32 masters
            self.model = AutoModelForSequenceClassification.from_pretrained(
                path, dtype=torch.float32, **kwargs
            )
        except (OSError, ValueError, KeyError) as e:
            raise RaftkitError(f"cross-encoder {path} does not load as a classifier: {e}") from e
        if self.tokenizer.pad_token is None:  # decoder models: pad with their end token
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(runtime.device).eval()
        names = {int(k): v.lower() for k, v in (self.model.config.id2label or {}).items()}
        n = self.model.config.num_labels
        self.label = next((i for i, v in names.items() if v.startswith("entail")), min(n - 1, 1))

    def autocast(self, training: bool = False):
        """bf16 (or float16, for scoring only) autocast where the runtime asks for it."""
        import torch

        rt = self.runtime
        if rt.dtype == "float32" or (training and rt.dtype == "float16"):
            return nullcontext()
        return torch.autocast("cuda" if rt.cuda else "cpu", dtype=rt.torch_dtype)

    def encode(self, pairs: list[tuple[str, str]]):
        batch = self.tokenizer(
            [q for q, _ in pairs],
            [t for _, t in pairs],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        return batch.to(self.runtime.device)

    def logits(self, pairs: list[tuple[str, str]]):
        """The one score per pair, as a differentiable tensor (float32)."""
        import torch

        out = self.model(**self.encode(pairs)).logits.float()
        if out.shape[1] == 1:
            return out[:, 0]
        # log-odds of the label: its logit against the log-sum-exp of the others
        others = torch.cat([out[:, : self.label], out[:, self.label + 1 :]], dim=1)
        return out[:, self.label] - others.logsumexp(dim=1)

    def save(self, folder: Path) -> None:
        """The model and its tokenizer, loadable by transformers and sentence-transformers."""
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)

    def __call__(self, pairs: list[tuple[str, str]], desc: str = "") -> np.ndarray:
        """The score of each pair; `desc` names a progress bar (none without it)."""
        import torch

        from raftkit.ui import progress

        todo = sorted({p for p in pairs if p not in self.cache})
        starts = range(0, len(todo), BATCH)
        with torch.inference_mode(), self.autocast():
            for start in progress(starts, desc=desc, unit="batch") if desc else starts:
                part = todo[start : start + BATCH]
                self.cache.update(zip(part, self.logits(part).cpu().numpy().tolist()))
        return np.array([self.cache[p] for p in pairs], dtype=np.float64)
