"""The OpenAI-compatible server backend of raftkit.generate: vLLM, llama.cpp server, Ollama or
OpenAI itself, reached through the `openai` client.

Replies come from chat completions; multiple-choice answers are scored from the prompt
log-probabilities the server echoes back (`make_generator` picks this backend for
`generation.backend: openai`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.generate import Answer, Conversation, Generator, choice_continuation
from raftkit.prompts import ANSWER_TAG
from raftkit.ui import progress

# A completions request the server refuses (llama.cpp: HTTP 400 "Only no echo is supported")
_REFUSED = (400, 404, 405, 422, 501)


class OpenAIGenerator(Generator):
    """Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI), through the `openai`
    client: its timeouts, and its retries with backoff that honour Retry-After.

    Replies come from chat completions. A choice's log-likelihood comes from the server too: the
    prompt (the model's chat template, applied here) plus the choice's answer line goes as token ids
    to the completions API with `echo`, `logprobs: 1` and `max_tokens: 1`, and the log-probabilities
    the server returns for the answer line's tokens are summed (vLLM; lm-evaluation-harness's
    `local-completions` asks the same way). Token ids, not text: the server scores exactly the
    tokens the in-process scorer scores, with no text offsets to map back.
    """

    def __init__(self, cfg: GenerationConfig):
        import openai

        self.cfg = cfg
        self.url = cfg.base_url.rstrip("/")
        self.client = openai.OpenAI(
            base_url=self.url,
            api_key=os.environ.get(cfg.api_key_env) or "none",
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
        self._tokenizer = None
        self._lock = threading.Lock()  # one tokenizer, shared by the request threads

    def _call(self, request, what: str = "generation", refused=None):
        """`request()`; any failure is one RaftkitError naming the server and why. `refused(detail)`
        words the error for a request the server rejects as such (HTTP 400, 404 ...)."""
        import openai

        try:
            return request()
        except openai.APIStatusError as e:
            if refused and e.status_code in _REFUSED:
                raise RaftkitError(refused(f"HTTP {e.status_code}: {_server_message(e)}")) from None
            why = f"HTTP {e.status_code}"
        except openai.APITimeoutError:
            why = f"no reply within {self.cfg.timeout_s:g}s"
        except openai.APIConnectionError as e:
            why = f"cannot connect ({type(e.__cause__ or e).__name__})"
        except (AttributeError, IndexError, TypeError, ValueError):
            why = f"reply is not an OpenAI {'chat ' if what == 'generation' else ''}completion"
        raise RaftkitError(f"{what} server {self.url} failed: {why}")

    def _one(self, conversation: Conversation, max_new_tokens: int) -> str:
        def chat():
            resp = self.client.chat.completions.create(
                model=self.cfg.model,
                messages=conversation,
                max_tokens=max_new_tokens,
                temperature=self.cfg.temperature,
                seed=self.cfg.seed,
            )
            return (resp.choices[0].message.content or "").strip()

        return self._call(chat)

    def _answer(self, conversations, choices, after_reply, desc, max_new_tokens) -> list[Answer]:
        """Replies, each followed by one scoring request for its choices (all in one request)."""
        n = max_new_tokens or self.cfg.max_new_tokens
        choices = choices or [[] for _ in conversations]
        out: dict[int, Answer] = {}
        first = next((i for i, c in enumerate(choices) if c), None)
        if first is not None:  # alone: a server that cannot score fails at once, with one error
            out[first] = self._one_answer(conversations[first], choices[first], after_reply, n)
        with ThreadPoolExecutor(max_workers=self.cfg.batch_size) as pool:
            futures = {
                i: pool.submit(self._one_answer, conv, choices[i], after_reply, n)
                for i, conv in enumerate(conversations)
                if i != first
            }
            try:
                for i, f in progress(futures.items(), total=len(futures), desc=desc, unit="req"):
                    out[i] = f.result()
            except BaseException:
                for f in futures.values():  # no more requests to a server that failed
                    f.cancel()
                raise
        return [out[i] for i in range(len(conversations))]

    def _one_answer(self, conversation, choices, after_reply: bool, max_new_tokens: int) -> Answer:
        if choices and not after_reply:  # scored first: a server that cannot score costs no reply
            scores = self.logliks(conversation, choices)
            return Answer(self._one(conversation, max_new_tokens), scores)
        reply = self._one(conversation, max_new_tokens)
        return Answer(reply, self.logliks(conversation, choices, reply) if choices else None)

    @property
    def tokenizer(self):
        """The tokenizer of `cfg.tokenizer` (else `cfg.model`), loaded at the first scored
        question."""
        with self._lock:
            if self._tokenizer is None:
                from raftkit.models import load_tokenizer

                self._tokenizer = load_tokenizer(self.cfg.tokenizer or self.cfg.model)
            return self._tokenizer

    def scored_ids(
        self, conversation: Conversation, choices: list[str], reply: str | None = None
    ) -> tuple[list[int], list[list[int]]]:
        """(the prompt's token ids, with the reply's reasoning when `reply` is given; each choice's
        answer-line ids), tokenized as the in-process scorer tokenizes them."""
        tok = self.tokenizer
        gap = ""
        with self._lock:
            ids = tok.apply_chat_template(conversation, add_generation_prompt=True)
            prefix = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
            if reply is not None:
                tag = reply.rfind(ANSWER_TAG)
                reasoning = reply[:tag].rstrip() if tag >= 0 else reply
                gap = reply[len(reasoning) : tag] if tag >= 0 else "\n"
                prefix += tok(reasoning, add_special_tokens=False)["input_ids"]
            conts = [
                tok(gap + choice_continuation(c), add_special_tokens=False)["input_ids"]
                for c in choices
            ]
        return prefix, conts

    def logliks(
        self, conversation: Conversation, choices: list[str], reply: str | None = None
    ) -> list[float]:
        """Each choice's summed log-probability after the prompt (and the reply's reasoning), from
        the prompt log-probabilities the server returns; raises RaftkitError, naming
        `scoring.mc: generate` as the way out, when the server returns none."""
        prefix, conts = self.scored_ids(conversation, choices, reply)
        prompts = [prefix + c for c in conts]

        def cannot(detail: str) -> str:
            return (
                f"scoring server {self.url} returns no log-probabilities of prompt tokens "
                f"({detail}), which scoring multiple choice by log-likelihood needs: serve the "
                "model with vLLM, or set scoring.mc: generate to score the choice each reply names"
            )

        def score():
            resp = self.client.completions.create(
                model=self.cfg.model,
                prompt=prompts,
                echo=True,
                logprobs=1,
                max_tokens=1,
                temperature=0.0,
            )
            got = sorted(resp.choices, key=lambda c: c.index)
            if len(got) != len(prompts):
                raise RaftkitError(cannot(f"{len(got)} results for {len(prompts)} prompts"))
            return [
                _sum_logprobs(c.logprobs, len(p), len(cont))
                for c, p, cont in zip(got, prompts, conts)
            ]

        scores = self._call(score, "scoring", cannot)
        if any(s is None for s in scores):
            raise RaftkitError(cannot("no `logprobs.token_logprobs` for the prompt in its reply"))
        return scores


def _sum_logprobs(logprobs, prompt_len: int, n: int) -> float | None:
    """The sum of the log-probabilities of the last `n` of a prompt's `prompt_len` tokens, from an
    echoed completion's `logprobs`; None where the server left them out."""
    values = getattr(logprobs, "token_logprobs", None) or []
    part = values[prompt_len - n : prompt_len] if len(values) >= prompt_len else []
    if len(part) != n or any(v is None for v in part):
        return None
    return float(sum(part))


def _server_message(e) -> str:
    """The server's own words in an error reply (OpenAI's {"error": {"message": ...}})."""
    body = e.body
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body or e.message)
