"""Report rendering in headless Chromium, batched choice log-likelihoods, recipes, the CLI, the real
model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from raftkit import config, prompts
from raftkit.cli import main
from raftkit.compare.config import CompareConfig
from raftkit.compare.run import compare
from raftkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import screenshot_report  # noqa: E402


def test_report_html_renders_with_plots_in_headless_chromium(
    tmp_path, built_index, stub_generator, compare_cfg
):
    if screenshot_report.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium) to render report.html")
    from PIL import Image

    report = compare(compare_cfg(built_index), tmp_path / "out", generator_factory=stub_generator)
    png = screenshot_report.screenshot(
        report.files["report.html"], tmp_path / "shot.png", height=1400
    )
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 1400)
    colors = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    # The accuracy bars (#3866d6) and hallucination bars (#e0833a) are drawn: the plots rendered.
    near = lambda rgb: any(sum(abs(a - b) for a, b in zip(rgb, c)) < 30 for c in colors)  # noqa: E731
    assert near((0x38, 0x66, 0xD6)) and near((0xE0, 0x83, 0x3A))


def full_forward_logliks(model, tokenizer, conv, prefix_ids, continuations):
    """The reference: one plain forward over prompt + prefix + continuation per choice, no cache."""
    import torch

    prompt = list(tokenizer.apply_chat_template(conv, add_generation_prompt=True)["input_ids"])
    out = []
    for cont in continuations:
        ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
        seq = torch.tensor([prompt + prefix_ids + ids])
        with torch.inference_mode():
            logp = torch.log_softmax(model(seq).logits[0].float(), dim=-1)
        start = len(prompt) + len(prefix_ids)
        out.append(float(sum(logp[start - 1 + i, t] for i, t in enumerate(ids))))
    return out


def tiny_generator(tiny_llama, **cfg):
    from raftkit.config import GenerationConfig
    from raftkit.generate import HFGenerator
    from raftkit.models import Runtime

    return HFGenerator(GenerationConfig(model=str(tiny_llama), **cfg), Runtime("cpu", "float32"))


def test_choice_logliks_from_the_generation_cache_equal_a_full_forward(tiny_llama):
    gen = tiny_generator(tiny_llama, max_new_tokens=5, batch_size=2)
    convs = [
        prompts.closed_book_messages("How tall is Mount Skarn?"),
        prompts.rag_messages(
            "Who founded the library?", ["The library was founded by Piet Haldor in 1881."]
        ),
        prompts.closed_book_messages("Is it open on Sundays?"),
    ]  # three prompts of different lengths: padding
    choices = [["3,412 metres", "2,000 m", "1"], ["Piet Haldor", "Ilse Marten"], ["yes", "no"]]
    answers = gen.answer(convs, choices)
    assert [len(a.logliks) for a in answers] == [3, 2, 2]
    for conv, ch, a in zip(convs, choices, answers):
        want = full_forward_logliks(
            gen.model, gen.tokenizer, conv, [], [f"{prompts.ANSWER_TAG} {x}" for x in ch]
        )
        assert a.logliks == pytest.approx(want, abs=1e-3)


def test_after_reply_the_choices_follow_the_generated_tokens(tiny_llama):
    import torch

    gen = tiny_generator(tiny_llama, max_new_tokens=6, batch_size=1)
    conv = prompts.closed_book_messages("How tall is Mount Skarn?")
    choices = ["3,412 metres", "2,000 m"]
    (a,) = gen.answer([conv], [choices], after_reply=True)
    prompt = gen.tokenizer.apply_chat_template(
        conv, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = gen.model.generate(
            **prompt, max_new_tokens=6, do_sample=False, pad_token_id=gen.tokenizer.pad_token_id
        )
    special = set(gen.tokenizer.all_special_ids)
    reply_ids = []
    for t in out[0, prompt["input_ids"].shape[1] :].tolist():
        if t in special:
            break
        reply_ids.append(t)
    # a random model writes no <ANSWER>: tag: the whole reply is the reasoning, and the answer line
    # follows it
    want = full_forward_logliks(
        gen.model, gen.tokenizer, conv, reply_ids, [f"\n{prompts.ANSWER_TAG} {x}" for x in choices]
    )
    assert a.logliks == pytest.approx(want, abs=1e-3)


def test_reasoning_is_the_reply_before_its_answer_line():
    quote = f"{prompts.BEGIN_QUOTE}x{prompts.END_QUOTE}"
    assert prompts.reasoning(f"Because {quote}.\n<ANSWER>: y") == f"Because {quote}.\n"
    assert prompts.reasoning("<ANSWER>: y") == ""
    assert prompts.reasoning("It is 14. ") == "It is 14.\n"


def test_compare_mc_after_reply_asks_the_generator_to_score_after_its_reply(
    tmp_path, built_index, stub_generator, compare_cfg
):
    seen = []

    class Recording(stub_generator):
        def answer(self, conversations, choices=None, after_reply=False, desc=""):
            seen.append(after_reply)
            return super().answer(conversations, choices, after_reply, desc)

    compare(
        compare_cfg(built_index, scoring={"mc_after": "reply", "ragas": False}),
        tmp_path / "out",
        generator_factory=Recording,
    )
    assert seen and all(seen)


@pytest.mark.parametrize(
    "recipe", sorted((ROOT / "recipes").glob("compare*.yaml")), ids=lambda p: p.name
)
def test_compare_recipes_load_and_name_their_command(recipe):
    cfg = config.load(CompareConfig, recipe)
    assert (
        recipe.read_text()
        .splitlines()[0]
        .startswith(f"# raftkit compare --config recipes/{recipe.name} --out ")
    )
    assert len({s.name for s in cfg.systems}) == len(cfg.systems) >= 2
    assert Path(ROOT / cfg.questions.path).exists()


def test_demo_recipe_has_the_four_standard_systems():
    cfg = config.load(CompareConfig, ROOT / "recipes" / "compare_demo.yaml")
    assert [(s.name, s.model, s.mode) for s in cfg.systems] == [
        ("base", "smollm2-135m-instruct", "closed"),
        ("base+rag", "smollm2-135m-instruct", "rag"),
        ("fine-tuned", "runs/demo-sft", "closed"),
        ("fine-tuned+rag", "runs/demo-sft", "rag"),
    ]


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("systems: []\nquestions: {path: nowhere.jsonl}\n")
    assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: {bad}: systems: name at least one system ({{name, model, mode, index, top_k}})"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compare_tiny_with_the_real_model(tmp_path, capsys, monkeypatch):
    """The recipe end to end through the CLI on the real 135M model (3 questions, short answers)."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            "--config",
            "recipes/compare_tiny.yaml",
            "--out",
            str(out),
            "--set",
            f"indexes_dir={tmp_path / 'indexes'}",
            "--set",
            "questions.max_questions=3",
            "--set",
            "generation.max_new_tokens=16",
            "--set",
            "bootstrap.samples=200",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    for name in ("results.json", "per_question.csv", "report.md", "report.html"):
        assert (out / name).is_file()
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["systems"]] == ["base", "base+rag"]
    assert all(s["questions"] == 3 and "accuracy" in s["metrics"] for s in results["systems"])
    assert results["reproduce"]["indexes"]["compare-tiny"]["counts"]["documents"] == 5
    assert "base+rag" in captured.out and "accuracy" in captured.out


def test_openai_judge_is_a_ragas_llm_without_network():
    from ragas.llms.base import BaseRagasLLM

    from raftkit.compare.extras import judge_llm

    cfg = config.load(
        CompareConfig,
        data={
            "systems": [{"name": "a", "model": "m"}],
            "questions": {"path": "q.jsonl"},
            "scoring": {
                "judge": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "judge"}
            },
        },
    )
    assert isinstance(judge_llm(cfg), BaseRagasLLM)
    with pytest.raises(
        ConfigError, match="kind 'openai' needs base_url; scoring.judge.kind 'openai' needs model"
    ):
        config.load(
            CompareConfig,
            data={
                "systems": [{"name": "a", "model": "m"}],
                "questions": {"path": "q"},
                "scoring": {"judge": {"kind": "openai"}},
            },
        )


def test_openai_judge_reads_its_key_from_api_key_env(monkeypatch):
    """scoring.judge.api_key_env names the environment variable whose value the judge sends as its
    API key (not OPENAI_API_KEY, which may hold the key of another server)."""
    import threading
    from http.server import ThreadingHTTPServer

    from conftest import JsonHandler
    from langchain_core.prompt_values import StringPromptValue

    from raftkit.compare.extras import judge_llm

    seen = []

    class Judge(JsonHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.headers.get("Authorization"), body["model"]))
            self._json(200, {"choices": [{"message": {"role": "assistant", "content": "yes"}}]})

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("OPENAI_API_KEY", "key-of-another-server")
    monkeypatch.setenv("JUDGE_KEY", "judge-sekrit")
    judge = {
        "kind": "openai",
        "base_url": f"http://127.0.0.1:{httpd.server_port}/v1",
        "model": "judge",
        "api_key_env": "JUDGE_KEY",
    }
    cfg = config.load(
        CompareConfig,
        data={
            "systems": [{"name": "a", "model": "m"}],
            "questions": {"path": "q.jsonl"},
            "scoring": {"judge": judge},
        },
    )
    try:
        result = judge_llm(cfg).generate_text(StringPromptValue(text="Is 3,412 metres right?"))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.generations[0][0].text == "yes"
    assert seen == [("Bearer judge-sekrit", "judge")]


def test_cli_summary_table_shows_headline_metrics_present():
    from raftkit.compare.intervals import Stat
    from raftkit.compare.report import SystemResult
    from raftkit.compare.run import summary_table

    def system(name, **values):
        return SystemResult(
            name, "m", "closed", "", 5, {}, 8, {}, {k: Stat(v, None, 8) for k, v in values.items()}
        )

    table = summary_table(
        [
            system("base", accuracy=0.25, stale_rate=0.5),
            system("fine-tuned+rag", accuracy=0.875, stale_rate=0.0),
        ]
    )
    assert table.splitlines() == [
        "  system             accuracy   stale",
        "  base                  25.0%   50.0%",
        "  fine-tuned+rag        87.5%    0.0%",
    ]
