"""Report rendering in headless Chromium, batched choice log-likelihoods, recipes, the CLI, the real model."""

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

from test_compare_run import Stub, _cfg  # noqa: E402


def test_report_html_renders_with_plots_in_headless_chromium(tmp_path, built_index):
    if screenshot_report.find_browser() is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium) to render report.html")
    from PIL import Image

    report = compare(_cfg(built_index), tmp_path / "out", generator_factory=Stub)
    png = screenshot_report.screenshot(report.files["report.html"], tmp_path / "shot.png", height=1400)
    image = Image.open(png).convert("RGB")
    assert image.size == (1200, 1400)
    colors = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    # The accuracy bars (#3866d6) and hallucination bars (#e0833a) are drawn: the plots rendered.
    near = lambda rgb: any(sum(abs(a - b) for a, b in zip(rgb, c)) < 30 for c in colors)  # noqa: E731
    assert near((0x38, 0x66, 0xD6)) and near((0xE0, 0x83, 0x3A))


def test_shared_prompt_loglik_equals_one_at_a_time(tiny_llama):
    from raftkit.compare.systems import choice_logliks
    from raftkit.config import GenerationConfig
    from raftkit.generate import HFGenerator

    gen = HFGenerator(GenerationConfig(model=str(tiny_llama), device="cpu"))
    convs = [prompts.closed_book_messages("How tall is Mount Skarn?"),
             prompts.rag_messages("Who founded the library?", ["The library was founded by Piet Haldor in 1881."])]
    choices = [["3,412 metres", "2,000 m", "1"], ["Piet Haldor", "Ilse Marten"]]
    batched = choice_logliks(gen, convs, choices)
    one = [gen.loglikelihood([c] * len(ch), [f"{prompts.ANSWER_TAG} {x}" for x in ch]) for c, ch in zip(convs, choices)]
    assert [len(b) for b in batched] == [3, 2]
    for b, o in zip(batched, one):
        assert b == pytest.approx(o, abs=1e-3)


def test_reasoning_is_the_reply_before_its_answer_line():
    quote = f"{prompts.BEGIN_QUOTE}x{prompts.END_QUOTE}"
    assert prompts.reasoning(f"Because {quote}.\n<ANSWER>: y") == f"Because {quote}.\n"
    assert prompts.reasoning("<ANSWER>: y") == ""
    assert prompts.reasoning("It is 14. ") == "It is 14.\n"


def test_choices_scored_after_the_reasoning_prefix(tiny_llama):
    from raftkit.compare.systems import choice_logliks
    from raftkit.config import GenerationConfig
    from raftkit.generate import HFGenerator

    gen = HFGenerator(GenerationConfig(model=str(tiny_llama), device="cpu"))
    conv = prompts.closed_book_messages("How tall is Mount Skarn?")
    prefix = "The atlas says 3,412 metres.\n"
    got = choice_logliks(gen, [conv], [["3,412 metres", "2,000 m"]], [prefix])[0]
    want = gen.loglikelihood([conv, conv], [f"{prefix}{prompts.ANSWER_TAG} {x}" for x in ("3,412 metres", "2,000 m")])
    assert got == pytest.approx(want, abs=1e-3)
    assert got != pytest.approx(choice_logliks(gen, [conv], [["3,412 metres", "2,000 m"]])[0], abs=1e-3)


def test_compare_mc_after_reply_scores_after_each_system_reply(tmp_path, built_index):
    seen = []

    class Recording(Stub):
        def loglikelihood(self, conversations, continuations):
            seen.extend(continuations)
            return [0.0] * len(continuations)

    compare(_cfg(built_index, scoring={"mc_after": "reply", "ragas": False}), tmp_path / "out",
            generator_factory=Recording)
    # c-01's rag reply quotes the atlas before its answer line: every choice is scored after that quote.
    quoted = [c for c in seen if c.startswith(prompts.BEGIN_QUOTE + "The tallest")]
    assert quoted and all(c.split("\n")[1].startswith(prompts.ANSWER_TAG) for c in quoted)
    assert any(c.startswith(prompts.ANSWER_TAG) for c in seen)  # replies without reasoning: right after the prompt


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("compare*.yaml")), ids=lambda p: p.name)
def test_compare_recipes_load_and_name_their_command(recipe):
    cfg = config.load(CompareConfig, recipe)
    assert recipe.read_text().splitlines()[0].startswith(f"# raftkit compare --config recipes/{recipe.name} --out ")
    assert len({s.name for s in cfg.systems}) == len(cfg.systems) >= 2
    assert Path(ROOT / cfg.questions.path).exists()


def test_demo_recipe_has_the_four_standard_systems():
    cfg = config.load(CompareConfig, ROOT / "recipes" / "compare_demo.yaml")
    assert [(s.name, s.model, s.mode) for s in cfg.systems] == [
        ("base", "smollm2-135m-instruct", "closed"), ("base+rag", "smollm2-135m-instruct", "rag"),
        ("fine-tuned", "runs/demo-sft", "closed"), ("fine-tuned+rag", "runs/demo-sft", "rag")]


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("systems: []\nquestions: {path: nowhere.jsonl}\n")
    assert main(["compare", "--config", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: systems: name at least one system ({{name, model, mode, index, top_k}})"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_compare_tiny_with_the_real_model(tmp_path, capsys, monkeypatch):
    """The recipe end to end through the CLI on the real 135M model (3 questions, short answers)."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / "report"
    code = main(["compare", "--config", "recipes/compare_tiny.yaml", "--out", str(out),
                 "--set", f"indexes_dir={tmp_path / 'indexes'}", "--set", "questions.max_questions=3",
                 "--set", "generation.max_new_tokens=16", "--set", "bootstrap.samples=200"])
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

    from raftkit.compare.results import judge_llm

    cfg = config.load(CompareConfig, data={
        "systems": [{"name": "a", "model": "m"}], "questions": {"path": "q.jsonl"},
        "scoring": {"judge": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "judge"}}})
    assert isinstance(judge_llm(cfg), BaseRagasLLM)
    with pytest.raises(ConfigError, match="kind 'openai' needs base_url; scoring.judge.kind 'openai' needs model"):
        config.load(CompareConfig, data={"systems": [{"name": "a", "model": "m"}], "questions": {"path": "q"},
                                         "scoring": {"judge": {"kind": "openai"}}})


def test_cli_summary_table_shows_headline_metrics_present():
    from raftkit.compare.run import summary_table

    results = {"systems": [
        {"name": "base", "metrics": {"accuracy": {"value": 0.25}, "stale_rate": {"value": 0.5},
                                     "accuracy_changed": {"value": None}}},
        {"name": "fine-tuned+rag", "metrics": {"accuracy": {"value": 0.875}, "stale_rate": {"value": 0.0}}},
    ]}
    assert summary_table(results).splitlines() == [
        "  system             accuracy   stale",
        "  base                  25.0%   50.0%",
        "  fine-tuned+rag        87.5%    0.0%",
    ]
