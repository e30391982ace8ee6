"""Generators: batched local generation is deterministic and order-preserving; the OpenAI-compatible
backend speaks the chat-completions protocol to a loopback server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from raftkit.config import GenerationConfig
from raftkit.errors import RaftkitError
from raftkit.generate import HFGenerator, OpenAIGenerator, make_generator


def convs(*questions):
    return [[{"role": "user", "content": q}] for q in questions]


def test_hf_batched_equals_one_at_a_time(tiny_llama):
    gen = HFGenerator(GenerationConfig(model=str(tiny_llama), batch_size=4, max_new_tokens=6))
    qs = convs("a", "a much longer question with many more tokens in it", "mid length one", "b")
    batched = gen.chat(qs)
    gen.cfg.batch_size = 1
    single = gen.chat(qs)
    assert len(batched) == 4 and batched == single  # left padding: batch composition changes nothing
    assert gen.chat(qs[:1]) == batched[:1]  # greedy decoding is deterministic


def test_loglikelihood_prefers_the_trained_continuation(tiny_llama):
    gen = HFGenerator(GenerationConfig(model=str(tiny_llama)))
    conv = convs("x")[0]
    a, b = gen.loglikelihood([conv, conv], ["yes", "yes yes yes yes"])
    assert a < 0 and b < a  # more tokens, lower total log-probability under a random model


class _Server(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Server.seen.append((self.path, self.headers.get("Authorization"), body))
        if body["messages"][-1]["content"] == "fail":
            self.send_response(400)
            self.end_headers()
            return
        reply = {"choices": [{"message": {"role": "assistant",
                                          "content": f" echo: {body['messages'][-1]['content']} "}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


def test_openai_backend_keeps_order_and_sends_key(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekrit")
    cfg = GenerationConfig(model="served-model", backend="openai", base_url=server, api_key_env="MY_KEY",
                           batch_size=3, max_new_tokens=12)
    gen = make_generator(cfg)
    assert isinstance(gen, OpenAIGenerator)
    assert gen.chat(convs("one", "two", "three", "four")) == ["echo: one", "echo: two", "echo: three", "echo: four"]
    path, auth, body = _Server.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sekrit"
    assert body["model"] == "served-model" and body["max_tokens"] == 12 and body["temperature"] == 0.0


def test_openai_backend_errors_are_one_line(server):
    gen = OpenAIGenerator(GenerationConfig(backend="openai", base_url=server))
    with pytest.raises(RaftkitError, match=r"^generation server .*/v1/chat/completions failed: HTTP 400$"):
        gen.chat(convs("fail"))


def test_prompts_are_sorted_by_real_token_length(tiny_llama):
    gen = HFGenerator(GenerationConfig(model=str(tiny_llama)))
    short, long = convs("hi", "a question with many many more words than the other one")
    assert len(gen.prompt_ids(long)) > len(gen.prompt_ids(short)) > 5
