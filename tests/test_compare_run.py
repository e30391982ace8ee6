"""`raftkit compare` end to end with a stub generator: exact metrics, the four files, resume,
errors."""

from __future__ import annotations

import csv
import json
import re

import pytest

from raftkit import config
from raftkit.compare.config import CompareConfig
from raftkit.compare.run import compare
from raftkit.errors import ConfigError, RaftkitError
from raftkit.retrieval.index import FaissIndex

QA = "tests/assets/compare/qa.jsonl"


def test_compare_exact_metrics_and_four_files(
    tmp_path, built_index, monkeypatch, stub_generator, compare_cfg
):
    searches = []
    real_search = FaissIndex.search
    monkeypatch.setattr(
        FaissIndex,
        "search",
        lambda self, qs, k=5: searches.append((len(qs), k)) or real_search(self, qs, k),
    )
    cfg = compare_cfg(
        built_index,
        systems=[
            {"name": "base", "model": "stub", "mode": "closed"},
            {"name": "base+rag", "model": "stub", "mode": "rag", "index": "assets", "top_k": 3},
            {"name": "base+rag1", "model": "stub", "mode": "rag", "index": "assets", "top_k": 1},
        ],
    )
    made = []
    report = compare(
        cfg, tmp_path / "out", generator_factory=lambda g: made.append(g.model) or stub_generator(g)
    )
    assert made == ["stub"]  # one model, loaded once for all three systems
    assert searches == [
        (8, 3)
    ]  # retrieval once per question, at the largest top_k, shared by both rag systems
    for name in ("results.json", "per_question.csv", "report.md", "report.html", "config.yaml"):
        assert (tmp_path / "out" / name).is_file()
    m = lambda s, k: report.metric(s, k)  # noqa: E731
    assert m("base", "accuracy") == pytest.approx(2 / 7)
    assert m("base", "em") == pytest.approx(2 / 7)
    assert m("base", "mc_loglik_accuracy") == pytest.approx(1 / 3)
    assert m("base", "mc_generated_accuracy") == pytest.approx(1 / 3)
    assert m("base", "confident_wrong_rate") == pytest.approx(4 / 7)
    assert m("base", "unanswerable_answered_rate") == 1.0
    assert m("base", "abstention_rate") == pytest.approx(1 / 8)
    assert m("base", "unsupported_quote_rate") == 1.0  # closed-book quotes are never supported
    assert (
        m("base", "accuracy_unchanged"),
        m("base", "accuracy_changed"),
        m("base", "accuracy_added"),
    ) == (0.25, 0.0, 1.0)
    assert (
        m("base", "stale_rate") == 1.0
    )  # c-03 loglik picks the v1 choice; c-04 answers the v1 "10"
    assert m("base+rag", "accuracy") == pytest.approx(6 / 7)
    assert m("base+rag", "confident_wrong_rate") == 0.0
    assert m("base+rag", "unanswerable_answered_rate") == 0.0
    assert m("base+rag", "abstention_rate") == 0.25
    assert m("base+rag", "unsupported_quote_rate") == 0.5  # c-01 quote found, c-05 invented
    assert (m("base+rag", "accuracy_unchanged"), m("base+rag", "stale_rate")) == (0.75, 0.0)
    rag1 = next(r for r in report.rows if r.system == "base+rag1" and r.qid == "c-01")
    assert len(rag1.retrieved) == 1 and rag1.retrieved[0].startswith("volcanoes.md#")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["questions"]["by_status"] == {
        "added": 1,
        "changed": 2,
        "unanswerable": 1,
        "unchanged": 4,
    }
    assert results["reproduce"]["indexes"]["assets"]["counts"]["documents"] == 5
    assert results["reproduce"]["versions"]["ragas"] == "0.4.3"
    acc = results["systems"][1]["metrics"]["accuracy"]
    assert acc["n"] == 7 and acc["ci"][0] <= acc["value"] <= acc["ci"][1]
    with open(tmp_path / "out" / "per_question.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and {"question", "system", "answer", "correct", "retrieved"} <= set(
        rows[0]
    )
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "Confident-wrong" in html
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "http" not in text and "<script" not in text and "<link" not in text  # self-contained
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| Accuracy | 28.6% [" in md and "## Definitions" in md


def test_compare_resumes_after_interruption(tmp_path, built_index, stub_generator, compare_cfg):
    cfg = compare_cfg(built_index)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        # batch_size 1 -> checkpoint blocks of 4 questions: base takes 2 calls, the rag system dies
        # in its 2nd
        compare(cfg, out, generator_factory=lambda g: stub_generator(g, fail_after=3))
    lines = lambda name: (out / ".work" / f"{name}.jsonl").read_text().splitlines()  # noqa: E731
    assert (
        len(lines("base")) == 8
        and len(lines("base+rag")) == 4
        and not (out / "results.json").exists()
    )
    stubs = []
    report = compare(
        cfg, out, generator_factory=lambda g: stubs.append(stub_generator(g)) or stubs[-1]
    )
    assert stubs[0].asked == [["c-05", "c-06", "c-07", "c-08"]]  # only what the checkpoint lacked
    fresh = compare(cfg, tmp_path / "fresh", generator_factory=stub_generator)
    assert [s["metrics"] for s in report.results["systems"]] == [
        s["metrics"] for s in fresh.results["systems"]
    ]


def test_compare_refuses_existing_report_and_other_config(
    tmp_path, built_index, stub_generator, compare_cfg
):
    out = tmp_path / "out"
    compare(compare_cfg(built_index), out, generator_factory=stub_generator)
    with pytest.raises(RaftkitError, match="already holds a report; use --overwrite"):
        compare(compare_cfg(built_index), out, generator_factory=stub_generator)
    compare(compare_cfg(built_index), out, overwrite=True, generator_factory=stub_generator)
    (out / "results.json").unlink()
    with pytest.raises(RaftkitError, match="unfinished comparison with another config"):
        compare(
            compare_cfg(built_index, questions={"max_questions": 3}),
            out,
            generator_factory=stub_generator,
        )


def test_holdout_questions_are_asked_without_their_documents(
    tmp_path, built_index, stub_generator, compare_cfg
):
    cfg = compare_cfg(built_index, unanswerable={"holdout_docs": 0.3})
    report = compare(cfg, tmp_path / "out", generator_factory=stub_generator)
    held = [r for r in report.rows if r.holdout]
    assert {r.system for r in held} == {"base+rag"} and len(
        held
    ) == 2  # round(0.3 * 7), rag systems only
    questions = {json.loads(x)["id"]: json.loads(x) for x in open(QA)}
    for r in held:
        assert not set(questions[r.qid.split("::")[0]]["doc_ids"]) & set(r.retrieved_doc_ids)
        assert r.status == "unanswerable" and r.correct is None
    assert report.results["questions"]["by_status"]["holdout"] == 2


def test_ragas_metrics_run_offline(tmp_path, built_index, stub_generator, compare_cfg):
    report = compare(
        compare_cfg(built_index, scoring={"ragas": True}),
        tmp_path / "out",
        generator_factory=stub_generator,
    )
    assert report.metric("base+rag", "ragas_rouge_l") > report.metric("base", "ragas_rouge_l")
    assert report.metric("base+rag", "ragas_context_recall") is not None
    assert (
        report.metric("base", "ragas_context_recall") is None
    )  # closed-book systems retrieve nothing
    row = next(r for r in report.rows if r.system == "base+rag" and r.qid == "c-02")
    assert row.ragas["ragas_string_similarity"] == 1.0 and row.ragas["ragas_rouge_l"] == 1.0


def test_config_problems_are_listed_at_once():
    with pytest.raises(ConfigError) as e:
        config.load(
            CompareConfig,
            data={
                "systems": [
                    {"name": "a", "model": "m", "mode": "rag"},
                    {"name": "a", "model": "", "top_k": 0},
                ],
                "scoring": {"mc": "vote"},
            },
        )
    msg = str(e.value)
    assert "scoring.mc: 'vote' is not one of 'loglik', 'generate', 'both'" in msg
    with pytest.raises(ConfigError) as e:
        config.load(
            CompareConfig,
            data={
                "systems": [
                    {"name": "a", "model": "m", "mode": "rag"},
                    {"name": "a", "model": "", "top_k": 0},
                ],
                "unanswerable": {"holdout_docs": 2.0},
            },
        )
    msg = str(e.value)
    for part in (
        "questions.path is required",
        "unanswerable.holdout_docs (2.0) must be in [0, 1]",
        "systems[0].mode 'rag' needs an index",
        "systems[1].model is required",
        "systems[1].top_k (0) must be at least 1",
        "systems: names must be unique (repeated: a)",
    ):
        assert part in msg


def test_bad_questions_file_writes_nothing(tmp_path, built_index, stub_generator, compare_cfg):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"id": "x", "question": "Where?"}\n')
    cfg = compare_cfg(built_index, questions={"path": str(bad)})
    with pytest.raises(
        RaftkitError, match="line 1 has neither 'answer' nor 'choices' with 'answer_index'"
    ):
        compare(cfg, tmp_path / "out", generator_factory=stub_generator)
    assert not (tmp_path / "out").exists()
    cfg = compare_cfg(
        built_index, systems=[{"name": "r", "model": "stub", "mode": "rag", "index": "nope"}]
    )
    with pytest.raises(RaftkitError, match="nope"):
        compare(cfg, tmp_path / "out", generator_factory=stub_generator)
    assert not (tmp_path / "out").exists()


def test_questions_from_a_build_dataset_output(tmp_path):
    from datasets import Dataset, DatasetDict

    from raftkit.compare.questions import load_questions

    row = {
        "id": "e1",
        "question": "How tall is Mount Skarn?",
        "answer": "3,412 metres",
        "doc_id": "volcanoes.md",
        "context": ["..."],
    }
    DatasetDict(
        {"train": Dataset.from_list([{**row, "id": "t1"}]), "eval": Dataset.from_list([row])}
    ).save_to_disk(str(tmp_path / "out" / "dataset"))
    cfg = config.load(
        CompareConfig,
        data={
            "systems": [{"name": "a", "model": "m"}],
            "questions": {"path": str(tmp_path / "out")},
        },
    )
    (q,) = load_questions(cfg)
    assert (q.id, q.answer, q.doc_ids, q.status, q.answerable) == (
        "e1",
        "3,412 metres",
        ["volcanoes.md"],
        "unchanged",
        True,
    )


def test_missing_model_is_named_before_anything_is_written(
    tmp_path, built_index, stub_generator, compare_cfg
):
    cfg = compare_cfg(
        built_index,
        systems=[
            {"name": "fine-tuned", "model": str(tmp_path / "runs" / "nope"), "mode": "closed"}
        ],
    )
    with pytest.raises(RaftkitError, match=r"^system 'fine-tuned': unknown model '.*nope'"):
        compare(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_paired_differences_against_the_baseline_and_the_verdict(
    tmp_path, built_index, stub_generator, compare_cfg
):
    report = compare(
        compare_cfg(built_index, baseline="base"),
        tmp_path / "out",
        generator_factory=stub_generator,
    )
    rag = next(s for s in report.systems if s.name == "base+rag")
    base = next(s for s in report.systems if s.name == "base")
    assert base.paired == {}  # the baseline is not compared with itself
    # paired over the 8 questions both answered: the difference of the two systems
    diff = rag.paired["accuracy"]
    assert diff.value == pytest.approx(
        rag.metrics["accuracy"].value - base.metrics["accuracy"].value
    )
    assert diff.ci[0] <= diff.value <= diff.ci[1] and diff.n == 8
    verdict = report.results["verdict"]
    assert verdict[0].startswith(
        "accuracy: accuracy, best base+rag (85.7%); against base: base+rag +57.1 points"
    )
    assert any(
        line.startswith("hallucination: truthfulness score, best base+rag") for line in verdict
    )
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.index("Verdict") < html.index("<h2>Systems")  # on top of the report


def test_the_verdict_cautions_about_a_system_that_refuses_everything():
    """A truthfulness 'win' that comes from refusing every answerable question is named as such."""
    from raftkit.compare.intervals import Stat
    from raftkit.compare.report import SystemResult
    from raftkit.compare.run import verdict

    def system(name: str, refused: float) -> SystemResult:
        stats = {"over_refusal_rate": Stat(refused, (refused, refused), 60)}
        return SystemResult(name, "m", "rag", "news", 4, {}, 120, {}, stats)

    lines = verdict([system("base+rag", 0.0), system("raft", 0.983), system("ok", 0.2)], "base+rag")
    cautions = [line for line in lines if line.startswith("caution:")]
    assert cautions == [
        "caution: raft refused 98.3% of the answerable questions; its hallucination figures come "
        "from refusing nearly everything, not from telling when the evidence is absent"
    ]


def test_the_evidence_gate_refuses_without_generating_and_still_scores_choices(
    tmp_path, built_index, stub_generator, compare_cfg
):
    """A rag system with min_score: questions whose best chunk scores below it get the gate's
    refusal (no reply generated), their choices are scored right after the prompt, and
    results.json records the threshold; `auto` on a model without a run applies no gate."""
    scores = {
        q: max(h.score for h in hits)
        for q, hits in zip(
            [json.loads(x)["question"] for x in open(QA)],
            built_index.search([json.loads(x)["question"] for x in open(QA)], 3),
        )
    }
    # the threshold closes exactly the lowest-scoring question
    low, second = sorted(scores.values())[:2]
    cfg = compare_cfg(
        built_index,
        systems=[
            {"name": "plain", "model": "stub", "mode": "rag", "index": "assets", "top_k": 3},
            {
                "name": "gated",
                "model": "stub",
                "mode": "rag",
                "index": "assets",
                "top_k": 3,
                "min_score": (low + second) / 2,
            },
        ],
    )
    stubs = []
    make = lambda g: stubs.append(stub_generator(g)) or stubs[-1]  # noqa: E731
    report = compare(cfg, tmp_path / "out", generator_factory=make)
    shut_question = min(scores, key=scores.get)
    shut = next(r for r in report.rows if r.system == "gated" and r.question == shut_question)
    assert shut.abstained and "evidence gate" in shut.reply
    asked = [qid for stub in stubs for calls in stub.asked for qid in calls]
    # plain asks every question; gated asks the shut one only to score its choices, if it has any
    assert asked.count(shut.qid) == 1 + (shut.mc_loglik_pick is not None)
    others = [r for r in report.rows if r.system == "gated" and r.qid != shut.qid]
    plain = {r.qid: r for r in report.rows if r.system == "plain"}
    assert all(r.answer == plain[r.qid].answer for r in others)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    info = {s["name"]: s["model_info"]["min_score"] for s in results["systems"]}
    assert info == {"plain": None, "gated": pytest.approx((low + second) / 2)}
    assert f"score < {(low + second) / 2:.3f}" in (tmp_path / "out" / "report.md").read_text()


def test_period_field_names_the_column_that_dates_a_question(tmp_path):
    """freshness.period_field: questions without a status, dated by a period column (RealTimeQA's
    `period`, here called `release`), are unchanged (v1, known at training time) or added (v2)."""
    from raftkit.compare.questions import load_questions

    qa = tmp_path / "qa.jsonl"
    rows = [
        {"id": "old", "question": "Who runs the mill?", "answer": "Ada", "release": "v1"},
        {"id": "new", "question": "Who runs the new mill?", "answer": "Bo", "release": "v2"},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def statuses(**freshness):
        data = {"systems": [{"name": "a", "model": "m"}], "questions": {"path": str(qa)}}
        cfg = config.load(CompareConfig, data={**data, "freshness": freshness})
        return {q.id: q.status for q in load_questions(cfg)}

    assert statuses(period_field="release") == {"old": "unchanged", "new": "added"}
    assert statuses() == {"old": "unchanged", "new": "unchanged"}  # `period`: no such column


def test_a_lower_bootstrap_level_gives_a_narrower_interval(tmp_path, stub_generator):
    """bootstrap.level is the confidence of every interval of the report: the same answers, the
    same resamples, a 50% interval inside the 95% one."""

    def accuracy(level):
        cfg = config.load(
            CompareConfig,
            data={
                "systems": [{"name": "base", "model": "stub", "mode": "closed"}],
                "questions": {"path": QA},
                "scoring": {"ragas": False},
                "bootstrap": {"samples": 200, "level": level},
            },
        )
        report = compare(cfg, tmp_path / str(level), generator_factory=stub_generator)
        assert report.results["bootstrap"]["level"] == level
        return next(s for s in report.systems if s.name == "base").metrics["accuracy"]

    wide, narrow = accuracy(0.95), accuracy(0.5)
    assert narrow.value == wide.value == pytest.approx(2 / 7)
    assert wide.ci[0] < narrow.ci[0] <= narrow.value <= narrow.ci[1] < wide.ci[1]
