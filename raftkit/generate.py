"""Text generation backends: a local HF model (batched) or any OpenAI-compatible server.

Both take chat conversations (lists of {"role", "content"}) and return the assistant's replies in
the same order. The local backend batches prompts of similar length together (left padding), decodes
greedily by default (the same inputs give the same outputs) and can score multiple-choice answers
from the cache its own generation left behind, so a question costs one prompt prefill in all.
The server backend, `OpenAIGenerator`, lives in raftkit/openai_client.py.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from raftkit.config import GenerationConfig
from raftkit.models import Runtime
from raftkit.prompts import ANSWER_TAG
from raftkit.ui import progress

Conversation = list[dict]


@dataclass
class Answer:
    reply: str  # the assistant's reply, stripped
    logliks: list[float] | None = (
        None  # per choice: log P(`<ANSWER>: choice` | prompt [+ reasoning]); None = not scored
    )


class Generator:
    """What every backend offers: `answer` (replies, and each choice's log-likelihood where the
    backend can score them) and `chat` (replies only). Backends implement `answer`."""

    cfg: GenerationConfig

    def answer(
        self,
        conversations: list[Conversation],
        choices: list[list[str]] | None = None,
        after_reply: bool = False,
        desc: str = "answering",
        max_new_tokens: int | None = None,
    ) -> list[Answer]:
        """Replies, and with `choices` each choice's log-likelihood (None where not scored): right
        after the prompt, or (`after_reply`) after the reply's reasoning."""
        return self._answer(conversations, choices, after_reply, desc, max_new_tokens)

    def _answer(self, conversations, choices, after_reply, desc, max_new_tokens) -> list[Answer]:
        raise NotImplementedError

    def chat(
        self,
        conversations: list[Conversation],
        max_new_tokens: int | None = None,
        desc: str = "generating",
    ) -> list[str]:
        """The replies to `conversations`, in order."""
        return [
            a.reply
            for a in self.answer(conversations, None, desc=desc, max_new_tokens=max_new_tokens)
        ]


def choice_continuation(choice: str) -> str:
    """What a choice's log-likelihood is measured on: the final-answer line the prompts ask for."""
    return f"{ANSWER_TAG} {choice}"


class HFGenerator(Generator):
    """A local transformers causal LM; `chat` and `answer` run batches of `cfg.batch_size`
    prompts."""

    def __init__(self, cfg: GenerationConfig, rt: Runtime, model=None, tokenizer=None):
        from raftkit.models import load_causal_lm, load_tokenizer

        self.cfg, self.runtime = cfg, rt
        self.tokenizer = tokenizer or load_tokenizer(cfg.model)
        self.model = model or load_causal_lm(cfg.model, rt)

    def prompt_ids(self, conversation: Conversation) -> list[int]:
        """Token ids of a conversation's prompt, ready for the assistant's reply."""
        ids = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
        return list(
            ids["input_ids"] if hasattr(ids, "keys") else ids
        )  # transformers 5 returns a BatchEncoding

    def _answer(self, conversations, choices, after_reply, desc, max_new_tokens) -> list[Answer]:
        """Batches of similar length; choice scores read off each batch's own generation cache."""
        lengths = [len(self.prompt_ids(c)) for c in conversations]
        # Similar lengths share a batch: less padding, fewer wasted FLOPs.
        order = sorted(range(len(conversations)), key=lambda i: -lengths[i])
        out: list[Answer] = [Answer("")] * len(conversations)
        bs = self.cfg.batch_size
        bar = progress(
            range(0, len(order), bs), total=(len(order) + bs - 1) // bs, desc=desc, unit="batch"
        )
        for start in bar:
            idx = order[start : start + bs]
            batch = self._generate(
                [conversations[i] for i in idx], max_new_tokens, seed=self.cfg.seed + start
            )
            for j, i in enumerate(idx):
                wanted = choices[i] if choices else []
                out[i] = Answer(
                    batch.reply(j), batch.logliks(j, wanted, after_reply) if wanted else None
                )
        return out

    def _generate(
        self, conversations: list[Conversation], max_new_tokens: int | None, seed: int
    ) -> _Batch:
        import torch

        enc = self.tokenizer.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            return_tensors="pt",
            padding=True,
            return_dict=True,
        ).to(self.model.device)
        sample = self.cfg.temperature > 0
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens or self.cfg.max_new_tokens,
                do_sample=sample,
                temperature=self.cfg.temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
                return_dict_in_generate=True,
            )
        return _Batch(
            self.model, self.tokenizer, enc["attention_mask"], out.sequences, out.past_key_values
        )


class _Batch:
    """One generated batch: its sequences and KV cache, from which replies and choice scores are
    read."""

    def __init__(self, model, tokenizer, mask, sequences, cache):
        self.model, self.tok, self.cache = model, tokenizer, cache
        self.width = mask.shape[1]  # prompt width, left padding included
        self.pads = (mask == 0).sum(dim=1).tolist()
        self.sequences = sequences
        special = set(tokenizer.all_special_ids)
        gen = sequences[:, self.width :].tolist()
        # a row's own tokens end at its first special token (EOS, or the pad after it)
        self.generated = [
            row[: next((k for k, t in enumerate(row) if t in special), len(row))] for row in gen
        ]

    def reply(self, j: int) -> str:
        return self.tok.decode(self.generated[j], skip_special_tokens=True).strip()

    def _reasoning_length(self, j: int) -> tuple[int, str]:
        """(tokens of row j's reasoning: its reply up to the last `<ANSWER>:`, text left between
        them and the tag)."""
        gen = self.generated[j]
        text = self.tok.decode(gen, skip_special_tokens=True)
        tag = text.rfind(ANSWER_TAG)
        if tag < 0:
            return len(gen), "\n"
        lo, hi = 0, len(gen)  # the most tokens whose text ends at or before the tag
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(self.tok.decode(gen[:mid], skip_special_tokens=True)) <= tag:
                lo = mid
            else:
                hi = mid - 1
        return lo, text[len(self.tok.decode(gen[:lo], skip_special_tokens=True)) : tag]

    def logliks(self, j: int, choices: list[str], after_reply: bool) -> list[float]:
        """Summed log-probabilities of each choice's answer line for row j, reusing the generation's
        cache.

        The cache already holds the prompt (and the reasoning): only the last of those tokens and
        the short choice lines run through the model, all choices in one batched forward.
        """
        import torch

        r, gap = self._reasoning_length(j) if after_reply else (0, "")
        end = self.width + r  # the row's tokens before the choice line end here (cache positions)
        start, n = self.pads[j], len(choices)
        past = type(self.cache)()
        for layer, (k, v) in enumerate((lay.keys, lay.values) for lay in self.cache.layers):
            past.update(
                k[j : j + 1, :, start : end - 1].repeat(n, 1, 1, 1),
                v[j : j + 1, :, start : end - 1].repeat(n, 1, 1, 1),
                layer,
            )
        last = int(self.sequences[j, end - 1])
        conts = [
            self.tok(gap + choice_continuation(c), add_special_tokens=False)["input_ids"]
            for c in choices
        ]
        width = max(map(len, conts)) + 1
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        dev = self.model.device
        ids = torch.tensor([[last] + c + [pad] * (width - 1 - len(c)) for c in conts], device=dev)
        seen = end - 1 - start  # tokens in the cache, all real (the left padding is cut off)
        mask = torch.tensor(
            [[1] * (seen + 1 + len(c)) + [0] * (width - 1 - len(c)) for c in conts], device=dev
        )
        positions = torch.arange(seen, seen + width, device=dev).expand(n, width)
        # transformers 5.x names the cache argument `cache` (`past_key_values` warns); others
        # keep the old name
        takes = inspect.signature(self.model.forward).parameters
        kv = {"cache" if "cache" in takes else "past_key_values": past}
        with torch.inference_mode():
            logits = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, **kv
            ).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        return [
            float(logp[i, : len(c)].gather(1, ids[i, 1 : len(c) + 1, None]).sum())
            for i, c in enumerate(conts)
        ]


def make_generator(cfg: GenerationConfig, rt: Runtime) -> Generator:
    """The backend `cfg.backend` names, loaded and ready (`rt`: device and dtype of a local
    model)."""
    if cfg.backend == "openai":
        from raftkit.openai_client import OpenAIGenerator

        return OpenAIGenerator(cfg)
    return HFGenerator(cfg, rt)
