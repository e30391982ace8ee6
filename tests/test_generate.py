"""Generators: batched local generation is deterministic and order-preserving, in float32 and bf16;
the OpenAI-compatible backend speaks the chat-completions protocol (retries included) to a loopback
server."""

import json
import threading
import time
from http.server import HTTPServer, ThreadingHTTPServer

import pytest
from conftest import JsonHandler

from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.generate import HFGenerator, make_generator
from raftkit.models import Runtime
from raftkit.openai_client import OpenAIGenerator

FP32, BF16 = Runtime("cpu", "float32"), Runtime("cpu", "bfloat16")


def convs(*questions):
    return [[{"role": "user", "content": q}] for q in questions]


def test_hf_batched_equals_one_at_a_time(tiny_llama):
    gen = HFGenerator(GenerationConfig(model=str(tiny_llama), batch_size=4, max_new_tokens=6), FP32)
    qs = convs("a", "a much longer question with many more tokens in it", "mid length one", "b")
    batched = gen.chat(qs)
    gen.cfg.batch_size = 1
    single = gen.chat(qs)
    assert (
        len(batched) == 4 and batched == single
    )  # left padding: batch composition changes nothing
    assert gen.chat(qs[:1]) == batched[:1]  # greedy decoding is deterministic


def test_bf16_runtime_loads_bf16_weights_and_scores_like_float32(tiny_llama):
    from raftkit import prompts

    conv = prompts.closed_book_messages("How tall is Mount Skarn?")
    choices = [["3,412 metres", "2,000 m", "Piet Haldor"]]
    full = HFGenerator(GenerationConfig(model=str(tiny_llama), max_new_tokens=4), FP32).answer(
        [conv], choices
    )[0]
    low_gen = HFGenerator(GenerationConfig(model=str(tiny_llama), max_new_tokens=4), BF16)
    assert {p.dtype for p in low_gen.model.parameters()} == {__import__("torch").bfloat16}
    low = low_gen.answer([conv], choices)[0]
    assert low.logliks == pytest.approx(full.logliks, abs=0.25)  # bf16 keeps ~3 significant digits


class _Server(JsonHandler):
    seen: list = []
    busy: list = []  # questions answered 429 once (Retry-After: 0), to test the client's retry

    def _status(self, code, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Server.seen.append((self.path, self.headers.get("Authorization"), body))
        question = body["messages"][-1]["content"]
        if question == "fail":
            return self._status(400)
        if question == "down":
            return self._status(503, [("Retry-After", "0")])
        if question == "busy" and question not in _Server.busy:
            _Server.busy.append(question)
            return self._status(429, [("Retry-After", "0")])
        reply = {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": f" echo: {body['messages'][-1]['content']} ",
                    }
                }
            ]
        }
        self._json(200, reply)


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def test_openai_backend_keeps_order_and_sends_key(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekrit")
    cfg = GenerationConfig(
        model="served-model",
        backend="openai",
        base_url=server,
        api_key_env="MY_KEY",
        batch_size=3,
        max_new_tokens=12,
    )
    gen = make_generator(cfg, FP32)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.chat(convs("one", "two", "three", "four")) == [
        "echo: one",
        "echo: two",
        "echo: three",
        "echo: four",
    ]
    path, auth, body = _Server.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sekrit"
    assert (
        body["model"] == "served-model" and body["max_tokens"] == 12 and body["temperature"] == 0.0
    )


def test_openai_backend_errors_are_one_line(server):
    gen = OpenAIGenerator(GenerationConfig(backend="openai", base_url=server, max_retries=1))
    with pytest.raises(
        RaftkitError, match=r"^generation server http://127.0.0.1:\d+/v1 failed: HTTP 400$"
    ):
        gen.chat(convs("fail"))
    sent = len(_Server.seen)
    with pytest.raises(RaftkitError, match=r"failed: HTTP 503$"):
        gen.chat(convs("down"))
    assert (
        len(_Server.seen) - sent == 2
    )  # the first try and max_retries=1 retry, then one clear line
    with pytest.raises(RaftkitError, match=r"failed: cannot connect"):
        OpenAIGenerator(
            GenerationConfig(backend="openai", base_url="http://127.0.0.1:9/v1", max_retries=0)
        ).chat(convs("x"))


def test_openai_backend_retries_a_busy_server(server):
    gen = OpenAIGenerator(GenerationConfig(backend="openai", base_url=server, max_retries=2))
    assert gen.chat(convs("busy")) == ["echo: busy"]
    assert [b["messages"][-1]["content"] for _, _, b in _Server.seen[-2:]] == ["busy", "busy"]


def test_prompts_are_sorted_by_real_token_length(tiny_llama):
    gen = HFGenerator(GenerationConfig(model=str(tiny_llama)), FP32)
    short, long = convs("hi", "a question with many many more words than the other one")
    assert len(gen.prompt_ids(long)) > len(gen.prompt_ids(short)) > 5


class _SlowServer(JsonHandler):
    """Answers every request after `delay` seconds; counts the requests."""

    delay = 3.0
    requests = 0

    def do_POST(self):
        type(self).requests += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        try:
            self._json(200, {"choices": [{"message": {"role": "assistant", "content": "late"}}]})
        except OSError:  # the client gave up long ago
            pass


def test_openai_backend_gives_up_on_a_slow_server_after_timeout_s():
    """timeout_s bounds each request: a server slower than it is retried (max_retries), then named
    in one line, long before it would have answered."""
    handler = type("Slow", (_SlowServer,), {"requests": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_port}/v1"
    try:
        gen = OpenAIGenerator(
            GenerationConfig(backend="openai", base_url=url, timeout_s=0.3, max_retries=1)
        )
        t0 = time.perf_counter()
        with pytest.raises(RaftkitError) as e:
            gen.chat(convs("slow"))
        seconds = time.perf_counter() - t0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert str(e.value) == f"generation server {url} failed: no reply within 0.3s"
    assert handler.requests == 2  # the first try and one retry, each cut off at timeout_s
    assert seconds < _SlowServer.delay  # not one request was waited out


def test_openai_backend_builds_scored_prompts_with_its_tokenizer(tokenizer):
    """generation.tokenizer: a server's model name is often no model raftkit can load; the prompts
    whose choices the server scores are then built with the tokenizer named here."""
    from raftkit.generate import choice_continuation

    conv = convs("How tall is Mount Skarn?")[0]
    served = GenerationConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="raft-7b")
    with pytest.raises(RaftkitError, match="^unknown model 'raft-7b'"):
        OpenAIGenerator(served).scored_ids(conv, ["3,412 metres"])
    named = served.model_copy(update={"tokenizer": "smollm2-135m-instruct"})
    prefix, conts = OpenAIGenerator(named).scored_ids(conv, ["3,412 metres", "2,000 metres"])
    ids = tokenizer.apply_chat_template(conv, add_generation_prompt=True)
    assert prefix == list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert conts == [
        tokenizer(choice_continuation(c), add_special_tokens=False)["input_ids"]
        for c in ("3,412 metres", "2,000 metres")
    ]
