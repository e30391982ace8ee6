"""Text generation backends: a local HF model (batched) or any OpenAI-compatible server.

Both take chat conversations (lists of {"role", "content"}) and return the assistant's replies in
the same order. The local backend batches prompts of similar length together (left padding) and
decodes greedily by default, so the same inputs give the same outputs.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.ui import progress

Conversation = list[dict]


class Generator(Protocol):
    cfg: GenerationConfig

    def chat(self, conversations: list[Conversation], max_new_tokens: int | None = None,
             desc: str = "generating") -> list[str]: ...


class HFGenerator:
    """A local transformers causal LM; `chat` runs batches of `cfg.batch_size` prompts."""

    def __init__(self, cfg: GenerationConfig, model=None, tokenizer=None):
        from raftkit.models import load_causal_lm, load_tokenizer

        self.cfg = cfg
        self.tokenizer = tokenizer or load_tokenizer(cfg.model)
        self.model = model or load_causal_lm(cfg.model, cfg.device)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        """Token ids of a conversation's prompt, ready for the assistant's reply."""
        ids = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5 returns a BatchEncoding

    def _encode(self, conversations: list[Conversation]):
        return self.tokenizer.apply_chat_template(
            conversations, add_generation_prompt=True, return_tensors="pt", padding=True,
            return_dict=True).to(self.model.device)

    def chat(self, conversations: list[Conversation], max_new_tokens: int | None = None,
             desc: str = "generating") -> list[str]:
        import torch

        lengths = [len(self.prompt_ids(c)) for c in conversations]
        # Similar lengths share a batch: less padding, fewer wasted FLOPs.
        order = sorted(range(len(conversations)), key=lambda i: -lengths[i])
        replies: list[str] = [""] * len(conversations)
        bs = self.cfg.batch_size
        sample = self.cfg.temperature > 0
        bar = progress(range(0, len(order), bs), total=(len(order) + bs - 1) // bs, desc=desc, unit="batch")
        for start in bar:
            idx = order[start:start + bs]
            enc = self._encode([conversations[i] for i in idx])
            torch.manual_seed(self.cfg.seed + start)
            with torch.inference_mode():
                out = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens or self.cfg.max_new_tokens, do_sample=sample,
                    temperature=self.cfg.temperature if sample else None, top_p=None, top_k=None,
                    pad_token_id=self.tokenizer.pad_token_id)
            texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, text in zip(idx, texts):
                replies[i] = text.strip()
        return replies

    def loglikelihood(self, conversations: list[Conversation], continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation after its prompt (for multiple choice)."""
        import torch

        scores = []
        for conv, cont in zip(conversations, continuations):
            prompt_ids = self.prompt_ids(conv)
            cont_ids = self.tokenizer(cont, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt_ids + cont_ids], device=self.model.device)
            with torch.inference_mode():
                logits = self.model(ids).logits[0, len(prompt_ids) - 1:-1].float()
            logp = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(prompt_ids):, None])
            scores.append(float(logp.sum()))
        return scores


class OpenAIGenerator:
    """Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, OpenAI)."""

    def __init__(self, cfg: GenerationConfig):
        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.key = os.environ.get(cfg.api_key_env, "")

    def _one(self, conversation: Conversation, max_new_tokens: int) -> str:
        body = json.dumps({"model": self.cfg.model, "messages": conversation, "max_tokens": max_new_tokens,
                           "temperature": self.cfg.temperature, "seed": self.cfg.seed}).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        last = ""
        for attempt in range(3):
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=300) as resp:
                    return json.loads(resp.read())["choices"][0]["message"]["content"].strip()
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}"
                if e.code < 500 and e.code != 429:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = str(getattr(e, "reason", e))
            except (KeyError, IndexError, json.JSONDecodeError):
                last = "reply is not an OpenAI chat completion"
                break
            time.sleep(0.5 * 2 ** attempt)
        raise RaftkitError(f"generation server {self.url} failed: {last}")

    def chat(self, conversations: list[Conversation], max_new_tokens: int | None = None,
             desc: str = "generating") -> list[str]:
        n = max_new_tokens or self.cfg.max_new_tokens
        with ThreadPoolExecutor(max_workers=self.cfg.batch_size) as pool:
            futures = [pool.submit(self._one, c, n) for c in conversations]
            return [f.result() for f in progress(futures, total=len(futures), desc=desc, unit="req")]


def make_generator(cfg: GenerationConfig) -> Generator:
    """The backend `cfg.backend` names, loaded and ready."""
    return OpenAIGenerator(cfg) if cfg.backend == "openai" else HFGenerator(cfg)
