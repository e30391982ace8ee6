"""Comparisons scored on a serving engine: a loopback server in vLLM's response schema serves the
tiny Llama (replies from greedy generation, prompt log-probabilities from a real forward pass), and
a `backend: openai` system scores its choices there as the in-process scorer does."""

from __future__ import annotations

import csv
import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import JsonHandler

from raftkit import config, prompts
from raftkit.cli import main
from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.generate import HFGenerator
from raftkit.models import Runtime
from raftkit.openai_client import OpenAIGenerator

FP32 = Runtime("cpu", "float32")
QUESTIONS = [
    ("How tall is Mount Skarn?", ["2,000 metres", "3,412 metres", "1,987 metres"]),
    ("How many seismometers monitor Mount Skarn?", ["12", "14", "16", "3"]),
    ("Who founded the bakery?", ["Piet Haldor", "Ilse Marten"]),
]


class LlamaServer(JsonHandler):
    """`/v1/chat/completions` and `/v1/completions` of vLLM's OpenAI-compatible server, answered by
    a local model. `mode`: vllm (echo returns prompt log-probs), llamacpp (echo is refused with
    llama.cpp's words) or noecho (echo is ignored: log-probs of the generated token only)."""

    generator: HFGenerator
    mode = "vllm"
    seen: list = []
    lock = threading.Lock()  # one forward at a time: the model is shared by the request threads

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        with self.lock:
            if self.path.endswith("/chat/completions"):
                reply = self.generator.chat([body["messages"]], body.get("max_tokens"))[0]
                return self._json(200, {"choices": [{"index": 0, "message": _msg(reply)}]})
            if body.get("echo") and self.mode == "llamacpp":
                # llama.cpp's server: std::runtime_error("Only no echo is supported") -> HTTP 400
                error = {"code": 400, "message": "Only no echo is supported"}
                return self._json(400, {"error": {**error, "type": "invalid_request_error"}})
            prompt = body["prompt"]
            many = isinstance(prompt, list) and prompt and not isinstance(prompt[0], int)
            choices = [
                self._completion(i, p, body) for i, p in enumerate(prompt if many else [prompt])
            ]
            return self._json(200, {"object": "text_completion", "choices": choices})

    def _completion(self, index: int, prompt, body: dict) -> dict:
        """One choice of a completions reply: the prompt's tokens (echo) and one greedy token, each
        with its log-probability (the first prompt token has none), as vLLM writes them."""
        import torch

        tok, model = self.generator.tokenizer, self.generator.model
        if isinstance(prompt, str):
            prompt = tok(prompt, add_special_tokens=body.get("add_special_tokens", True))
            prompt = prompt["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([prompt])).logits[0].float(), dim=-1)
        new = int(logp[-1].argmax())
        ids = list(prompt) + [new]
        values = [None] + [float(logp[k - 1, t]) for k, t in enumerate(ids) if k > 0]
        if not (body.get("echo") and self.mode == "vllm"):
            ids, values = ids[-1:], values[-1:]
        tokens = [tok.decode([t]) for t in ids]
        offsets = [sum(len(t) for t in tokens[:k]) for k in range(len(tokens))]
        return {
            "index": index,
            "text": "".join(tokens),
            "finish_reason": "length",
            "logprobs": {
                "tokens": tokens,
                "token_logprobs": values,
                "text_offset": offsets,
                "top_logprobs": [None if v is None else {t: v} for t, v in zip(tokens, values)],
            },
        }


def _msg(text: str) -> dict:
    return {"role": "assistant", "content": text}


@pytest.fixture(scope="module")
def local_llama(tiny_llama):
    """The tiny Llama loaded in float32, as the in-process scorer and the server both use it."""
    return HFGenerator(GenerationConfig(model=str(tiny_llama), max_new_tokens=8), FP32)


@pytest.fixture
def served(local_llama):
    """serve(mode) -> the base_url of a loopback server answering with the tiny Llama."""
    servers = []

    def serve(mode: str = "vllm") -> str:
        handler = type("Handler", (LlamaServer,), {"generator": local_llama, "mode": mode})
        handler.seen = []
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append((httpd, handler))
        return f"http://127.0.0.1:{httpd.server_port}/v1"

    serve.requests = lambda: [r for _, h in servers for r in h.seen]
    yield serve
    for httpd, _ in servers:
        httpd.shutdown()
        httpd.server_close()


def _client(url: str, model: Path, **kw) -> OpenAIGenerator:
    cfg = dict(model=str(model), backend="openai", base_url=url, max_new_tokens=8, max_retries=0)
    return OpenAIGenerator(GenerationConfig(**{**cfg, **kw}))


def test_server_choice_scores_equal_the_in_process_scores(served, local_llama, tiny_llama):
    convs = [prompts.closed_book_messages(q) for q, _ in QUESTIONS]
    convs[2] = prompts.rag_messages(QUESTIONS[2][0], ["Piet Haldor founded the bakery."], ["b"])
    choices = [c for _, c in QUESTIONS]
    here = local_llama.answer(convs, choices)
    there = _client(served(), tiny_llama, batch_size=3).answer(convs, choices)
    for a, b in zip(here, there):
        assert b.reply == a.reply
        assert b.logliks == pytest.approx(a.logliks, abs=1e-3)
    # one request per question for all its choices: token ids, echoed with their log-probs
    scoring = [b for path, b in served.requests() if path == "/v1/completions"]
    assert len(scoring) == 3 and all(b["echo"] and b["max_tokens"] == 1 for b in scoring)
    assert sorted(len(b["prompt"]) for b in scoring) == sorted(map(len, choices))
    assert all(isinstance(t, int) for b in scoring for p in b["prompt"] for t in p)


def test_server_scores_choices_after_the_reply(served, local_llama, tiny_llama):
    """mc_after: reply scores the answer line after the reply's reasoning, on the server too: the
    reply is asked for first, then its reasoning (up to the last `<ANSWER>:`) joins the prompt."""
    client = _client(served(), tiny_llama)
    conv = prompts.closed_book_messages(QUESTIONS[0][0])
    client.answer([conv], [QUESTIONS[0][1]], after_reply=True)
    assert [path for path, _ in served.requests()] == ["/v1/chat/completions", "/v1/completions"]
    reply = "The summit is high.\n<ANSWER>: 3,412 metres"
    after = client.logliks(conv, QUESTIONS[0][1], reply)
    sent = served.requests()[-1][1]["prompt"][0]
    tok = local_llama.tokenizer
    reasoning = tok("The summit is high.", add_special_tokens=False)["input_ids"]
    line = tok("\n<ANSWER>: 2,000 metres", add_special_tokens=False)["input_ids"]
    assert sent == local_llama.prompt_ids(conv) + reasoning + line
    assert after != pytest.approx(client.logliks(conv, QUESTIONS[0][1]), abs=1e-3)


@pytest.mark.parametrize(
    "mode,why",
    [
        ("llamacpp", "HTTP 400: Only no echo is supported"),
        ("noecho", "no `logprobs.token_logprobs` for the prompt in its reply"),
    ],
)
def test_a_server_without_prompt_logprobs_fails_at_the_first_request(mode, why, served, tiny_llama):
    url = served(mode)
    convs = [prompts.closed_book_messages(q) for q, _ in QUESTIONS]
    with pytest.raises(RaftkitError) as e:
        _client(url, tiny_llama, batch_size=3).answer(convs, [c for _, c in QUESTIONS])
    assert str(e.value) == (
        f"scoring server {url} returns no log-probabilities of prompt tokens ({why}), which "
        "scoring multiple choice by log-likelihood needs: serve the model with vLLM, or set "
        "scoring.mc: generate to score the choice each reply names"
    )
    assert [path for path, _ in served.requests()] == ["/v1/completions"]  # the first, alone


def _compare_yaml(tmp_path, built_index, system: dict, **sections) -> Path:
    from raftkit.compare.config import CompareConfig

    data = {
        "systems": [
            {"mode": "closed", "name": "base", **system},
            {"mode": "rag", "name": "base+rag", "index": "assets", "top_k": 2, **system},
        ],
        "questions": {"path": "tests/assets/compare/qa.jsonl"},
        "indexes_dir": str(built_index.path.parent),
        "generation": {"batch_size": 4, "max_new_tokens": 8},
        "runtime": {"device": "cpu", "dtype": "float32"},
        "scoring": {"ragas": False},
        "bootstrap": {"samples": 50},
        **sections,
    }
    path = tmp_path / f"compare-{len(list(tmp_path.glob('compare-*.yaml')))}.yaml"
    config.save_resolved(config.load(CompareConfig, data=data), tmp_path, path.name)
    return path


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if ".work" not in p.parts}


def _rows(out: Path) -> dict:
    with open(out / "per_question.csv", encoding="utf-8") as f:
        return {(r["system"], r["qid"]): r for r in csv.DictReader(f)}


def test_compare_with_a_server_system_writes_the_same_report(
    served, tiny_llama, built_index, tmp_path, capsys
):
    local = _compare_yaml(tmp_path, built_index, {"model": str(tiny_llama)})
    url = served()
    server = {"model": str(tiny_llama), "backend": "openai", "base_url": url}
    remote = _compare_yaml(tmp_path, built_index, server)
    assert main(["compare", "--config", str(local), "--out", str(tmp_path / "local")]) == 0
    assert main(["compare", "--config", str(remote), "--out", str(tmp_path / "served")]) == 0
    assert _files(tmp_path / "served") == _files(tmp_path / "local")
    here, there = _rows(tmp_path / "local"), _rows(tmp_path / "served")
    assert there.keys() == here.keys()
    for key, row in here.items():
        for column in ("answer", "mc_loglik_pick", "mc_generated_pick", "correct"):
            assert there[key][column] == row[column], (key, column)
    assert any(row["mc_loglik_pick"] for row in here.values())  # choices were scored
    results = json.loads((tmp_path / "served" / "results.json").read_text())
    assert {s["model_info"].get("served_by") for s in results["systems"]} == {url}


def test_compare_against_a_server_without_prompt_logprobs_is_one_line(
    served, tiny_llama, built_index, tmp_path, capsys
):
    server = {"model": str(tiny_llama), "backend": "openai", "base_url": served("llamacpp")}
    cfg = _compare_yaml(tmp_path, built_index, server)
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    assert [line for line in err if line.startswith("error:")] == err[-1:], err
    assert "Only no echo is supported" in err[-1] and "set scoring.mc: generate" in err[-1]
    generated = _compare_yaml(
        tmp_path, built_index, server, scoring={"ragas": False, "mc": "generate"}
    )
    out = tmp_path / "generated"
    assert main(["compare", "--config", str(generated), "--out", str(out), "--overwrite"]) == 0
    assert all(not row["mc_loglik_pick"] for row in _rows(out).values())


def test_a_served_system_needs_a_base_url():
    from raftkit.compare.config import CompareConfig
    from raftkit.errors import ConfigError

    data = {
        "systems": [
            {"name": "local", "model": "m"},
            {"name": "served", "model": "m", "backend": "openai"},
        ],
        "questions": {"path": "qa.jsonl"},
    }
    with pytest.raises(
        ConfigError, match=r"systems\[1\] \('served'\): backend 'openai' needs base"
    ):
        config.load(CompareConfig, data=data)
    data["generation"] = {"base_url": "http://127.0.0.1:8000/v1"}  # shared by every served system
    cfg = config.load(CompareConfig, data=data)
    local, served = (s.generation_config(cfg.generation) for s in cfg.systems)
    assert (local.backend, served.backend) == ("hf", "openai")
    assert served.base_url == "http://127.0.0.1:8000/v1" and served.model == "m"


def test_a_served_system_whose_prompts_cannot_be_built_is_named_first(built_index, tmp_path):
    """Scoring choices on a server needs the model's chat template here: a served name that is no
    model raftkit can resolve is named before anything is written (or set `tokenizer`)."""
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare

    cfg = config.load(CompareConfig, _compare_yaml(tmp_path, built_index, {"model": "m"}))
    served = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "raft-7b"}
    cfg.systems = [s.model_copy(update=served) for s in cfg.systems]
    with pytest.raises(
        RaftkitError, match=r"^system 'base' \(the tokenizer of the scored prompts\): unknown model"
    ):
        compare(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_system_served_under_another_name_scores_with_its_tokenizer(
    served, local_llama, tiny_llama, built_index, tmp_path
):
    """systems[].tokenizer: the server calls its model `raft-7b`, no model raftkit can load; with
    `tokenizer` naming the served model's folder, the comparison builds the scored prompts with it
    (and asks the server for `raft-7b`)."""
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare

    system = {"backend": "openai", "base_url": served(), "model": "raft-7b"}
    cfg = config.load(CompareConfig, _compare_yaml(tmp_path, built_index, {"model": "m"}))
    cfg.systems = [cfg.systems[0].model_copy(update={**system, "tokenizer": str(tiny_llama)})]
    report = compare(cfg, tmp_path / "out")
    picked = {r.qid: r.mc_loglik_pick for r in report.rows}
    assert {q for q, pick in picked.items() if pick is not None} == {"c-01", "c-03", "c-05"}
    asked = served.requests()
    assert {b["model"] for _, b in asked} == {"raft-7b"}
    questions = {json.loads(line)["question"] for line in open("tests/assets/compare/qa.jsonl")}
    prefixes = [local_llama.prompt_ids(prompts.closed_book_messages(q)) for q in questions]
    scoring = [b["prompt"] for path, b in asked if path == "/v1/completions"]
    assert len(scoring) == 3
    for prompt in scoring:  # every choice follows a prompt of the served model's chat template
        assert any(all(p[: len(pre)] == pre for p in prompt) for pre in prefixes)
