"""Exact values of every compare metric on hand-made answers (no model), and what the intervals
promise."""

from __future__ import annotations

import numpy as np
import pytest

from raftkit import prompts
from raftkit.compare import intervals, metrics, scoring
from raftkit.compare.questions import status_from_period
from raftkit.compare.scoring import ScoredRow


# ----------------------------------------------------------------------------- open answers
def test_normalize_answer_is_squad():
    assert prompts.normalize_answer("The  Port, is: 7421!") == "port is 7421"
    assert prompts.normalize_answer("An Apple a day") == "apple day"


def test_exact_match_f1_substring_values():
    assert scoring.exact_match("the Apache License 2.0.", "Apache License 2.0") == 1.0
    assert scoring.exact_match("Apache 2.0", "Apache License 2.0") == 0.0
    # pred tokens: apache 20 ; ref tokens: apache license 20 -> p=1, r=2/3, f1=0.8
    assert scoring.token_f1("Apache 2.0", "Apache License 2.0") == pytest.approx(0.8)
    assert scoring.token_f1("port 7421 and 7421", "7421") == pytest.approx(2 * 0.25 * 1 / 1.25)
    assert scoring.token_f1("nothing", "7421") == 0.0
    assert scoring.token_f1("", "") == 1.0
    assert scoring.substring_match("The port is 7421.", "7421") == 1.0
    assert scoring.substring_match("The port is 74210.", "7421") == 0.0  # whole words only
    assert scoring.substring_match("anything", "") == 0.0


def test_open_scores_correct_is_em_or_substring():
    # 4 predicted tokens, 1 shared: p=1/4, r=1, f1=0.4
    assert scoring.open_scores("It listens on 7421", "7421") == {
        "em": 0.0,
        "f1": pytest.approx(0.4),
        "substring": 1.0,
        "correct": 1.0,
    }
    assert scoring.open_scores("7420", "7421") == {
        "em": 0.0,
        "f1": 0.0,
        "substring": 0.0,
        "correct": 0.0,
    }
    assert scoring.matches("7421", None) is False


# ----------------------------------------------------------------------------- abstention
@pytest.mark.parametrize(
    "answer",
    [
        prompts.ABSTAIN,
        "I don't know.",
        "i do not know",
        "I cannot answer that",
        "The name is not explicitly mentioned in the given text.",
        "The documents do not contain this.",
        "Not enough information.",
    ],
)
def test_abstentions_are_detected(answer):
    assert prompts.is_abstention(answer)


@pytest.mark.parametrize(
    "answer", ["7421", "Knowledge base", "no", "The answer is in the documents: 4 MiB"]
)
def test_answers_are_not_abstentions(answer):
    assert not prompts.is_abstention(answer)


def test_abstention_list_holds_the_prompt_refusals():
    assert prompts.ABSTAIN in prompts.ABSTENTIONS and "I don't know" in prompts.ABSTENTIONS


def test_the_rlhf_reward_and_the_evaluation_normalise_alike():
    from raftkit.train import rewards

    completion = [{"role": "assistant", "content": "<ANSWER>: The Port, 7421!"}]
    assert rewards.answer_reward([completion], answer=["port 7421"]) == [1.0]
    assert scoring.exact_match("The Port, 7421!", "port 7421") == 1.0


# ----------------------------------------------------------------------- multiple choice, staleness
def test_loglik_pick_first_on_ties_and_none_without_choices():
    assert scoring.loglik_pick([-3.0, -1.0, -1.0, -5.0]) == 1
    assert scoring.loglik_pick([]) is None


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("7421", 1),
        ("It is 7421.", 1),
        ("B", 1),
        ("(c)", 2),
        ("D.", 3),
        ("A) 7420", 0),
        ("7420 or 7421", None),
        ("I don't know", None),
        ("Z", None),
        ("4 MiB", 2),
    ],
)
def test_generated_choice(answer, expected):
    choices = (
        ["7420", "7421", "4 MiB", "4"] if answer == "4 MiB" else ["7420", "7421", "7422", "9464"]
    )
    assert scoring.generated_choice(answer, choices) == expected


def test_stale_open_and_mc():
    assert scoring.is_stale_open("It is 1 MiB", "1 MiB", "4 MiB")
    assert not scoring.is_stale_open("4 MiB", "1 MiB", "4 MiB")
    assert not scoring.is_stale_open(
        "1 MiB or 4 MiB", "1 MiB", "4 MiB"
    )  # hedging both is not stale
    assert not scoring.is_stale_open("2 MiB", "1 MiB", "4 MiB")
    assert not scoring.is_stale_open("1 MiB", None, "4 MiB")
    assert (
        scoring.is_stale_mc(0, 0)
        and not scoring.is_stale_mc(2, 0)
        and not scoring.is_stale_mc(None, 0)
    )
    assert not scoring.is_stale_mc(0, None)
    assert status_from_period("v2") == "added" and status_from_period("v1") == "unchanged"


# ----------------------------------------------------------------------------- the registry
def row(
    answerable=True,
    abstained=False,
    gen_correct=False,
    quotes=0,
    unsupported=0,
    status="unchanged",
    correct=None,
    stale=None,
    qid="q",
) -> ScoredRow:
    return ScoredRow(
        system="s",
        qid=qid,
        question="?",
        status=status,
        holdout=False,
        answerable=answerable,
        reference="x" if answerable else None,
        answer="",
        reply="",
        abstained=abstained,
        correct=(gen_correct if correct is None else correct) if answerable else None,
        primary="open",
        gen_correct=gen_correct if answerable else None,
        stale=stale,
        quotes=quotes,
        quotes_unsupported=unsupported,
    )


def value(rows, name):
    return intervals.summarize(rows, 50, 0, 0.95)[name]


def test_hallucination_rates_exact():
    rows = [
        row(gen_correct=True, quotes=2, unsupported=0),  # right
        row(gen_correct=False),  # confident-wrong
        row(abstained=True),  # abstained on an answerable question: not confident-wrong
        row(gen_correct=False, quotes=4, unsupported=1),  # confident-wrong
        row(
            answerable=False, status="unanswerable", quotes=1, unsupported=1
        ),  # answered the unanswerable
        row(answerable=False, status="unanswerable", abstained=True),
        row(answerable=False, status="unanswerable", abstained=True),
    ]
    assert value(rows, "abstention_rate").value == pytest.approx(3 / 7)
    assert (value(rows, "confident_wrong_rate").value, value(rows, "confident_wrong_rate").n) == (
        0.5,
        4,
    )
    assert value(rows, "unanswerable_answered_rate").value == pytest.approx(1 / 3)
    # per quoting reply: 0/2, 1/4, 1/1 -> mean 0.41666...
    assert value(rows, "unsupported_quote_rate").value == pytest.approx(1.25 / 3)
    assert "unsupported_quote_rate" not in intervals.summarize(
        [row()], 50, 0, 0.95
    )  # nobody quoted: no value


def test_freshness_metrics_only_with_changed_or_added_facts():
    rows = [
        row(status="unchanged", correct=True),
        row(status="unchanged", correct=False),
        row(status="changed", correct=True, stale=False),
        row(status="changed", correct=False, stale=True),
        row(status="changed", correct=False, stale=False),
        row(status="added", correct=True),
        row(status="unanswerable", answerable=False),
    ]
    got = intervals.summarize(rows, 50, 0, 0.95)
    assert got["accuracy_unchanged"].value == 0.5
    assert got["accuracy_changed"].value == pytest.approx(1 / 3) and got["accuracy_changed"].n == 3
    assert got["accuracy_added"].value == 1.0
    assert got["stale_rate"].value == pytest.approx(1 / 3)
    assert "accuracy_unchanged" not in intervals.summarize(
        [row(status="unchanged", correct=True)], 50, 0, 0.95
    )


def test_every_metric_has_a_definition_label_and_group():
    groups = [g.name for g in metrics.GROUPS]
    for m in metrics.METRICS:
        assert m.label and m.definition and m.group in groups, m.name
        assert (m.value is None) == (m.combine is not None), m.name
    assert len(metrics.REGISTRY) == len(metrics.METRICS)  # names are unique
    assert len(set(groups)) == len(groups)


def test_plots_and_cautions_name_metrics_of_the_registry():
    for g in metrics.GROUPS:
        for plot in g.plots:
            assert all(metrics.REGISTRY[n].group == g.name for n in plot.only), plot.title
    for c in metrics.CAUTIONS:
        assert c.metric in metrics.REGISTRY and 0 < c.at <= 1, c.metric
        assert "{system}" in c.message and "{value}" in c.message, c.metric


# ----------------------------------------------------------------------------- intervals
def test_bootstrap_all_ones_is_a_point_and_seeded():
    assert intervals.bootstrap_ci([1.0] * 20, samples=500, seed=3) == (1.0, 1.0)
    assert intervals.bootstrap_ci([], samples=10) is None
    x = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    assert intervals.bootstrap_ci(x, 2000, seed=7) == intervals.bootstrap_ci(x, 2000, seed=7)
    lo, hi = intervals.bootstrap_ci(x, 2000, seed=7)
    assert 0.0 <= lo < 0.7 < hi <= 1.0


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        sample = (rng.random(150) < 0.3).astype(float)
        lo, hi = intervals.bootstrap_ci(list(sample), samples=400, seed=trial)
        covered += lo <= 0.3 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_more_questions_give_a_narrower_interval():
    def width(n):
        lo, hi = intervals.bootstrap_ci([1.0, 0.0] * n, samples=1000, seed=0)
        return hi - lo

    assert width(200) < width(20) / 2.5  # about 1/sqrt(n)


def test_paired_difference_sees_a_gain_that_two_separate_intervals_hide():
    rng = np.random.default_rng(0)
    base_ok = rng.random(60) < 0.5
    better_ok = base_ok.copy()
    better_ok[np.flatnonzero(~base_ok)[:6]] = (
        True  # right on 6 more questions, wrong on none it had right
    )
    base = [row(correct=bool(c), qid=f"q{i}") for i, c in enumerate(base_ok)]
    better = [row(correct=bool(c), qid=f"q{i}") for i, c in enumerate(better_ok)]
    a, b = value(better, "accuracy"), value(base, "accuracy")
    assert a.ci[0] < b.ci[1]  # the two intervals overlap ...
    diff = intervals.paired(better, base, ["accuracy"], 1000, 0, 0.95)["accuracy"]
    assert diff.value == pytest.approx(6 / 60)
    assert diff.ci[0] > 0  # ... but the paired interval excludes 0
    same = intervals.paired(base, base, ["accuracy"], 200, 0, 0.95)["accuracy"]
    assert (same.value, same.ci) == (0.0, (0.0, 0.0))


def test_abstention_metrics_exact():
    rows = [
        row(correct=True, qid="a1"),  # answered right: +1
        row(correct=False, qid="a2"),  # answered wrong: -1
        row(abstained=True, qid="a3"),  # refused an answerable question: 0, an over-refusal
        row(correct=True, qid="a4"),  # +1
        row(answerable=False, status="unanswerable", qid="u1"),  # answered without evidence: -1
        row(
            answerable=False, status="unanswerable", abstained=True, qid="u2"
        ),  # refused rightly: 0
    ]
    got = intervals.summarize(rows, 200, 0, 0.95)
    assert got["truthfulness"].value == pytest.approx((1 - 1 + 0 + 1 - 1 + 0) / 6)
    assert got["refusal_precision"].value == 0.5  # 2 refusals, 1 of them evidence-absent
    assert got["refusal_recall"].value == 0.5  # 2 evidence-absent, 1 refused
    assert got["refusal_f1"].value == pytest.approx(0.5)
    assert got["selective_accuracy"].value == pytest.approx(2 / 3)  # 3 answered answerable, 2 right
    assert got["over_refusal_rate"].value == 0.25
    lo, hi = got["refusal_f1"].ci
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0
