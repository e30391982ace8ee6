"""Exact values of every compare metric on hand-made answers (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from raftkit import prompts
from raftkit.compare import freshness, hallucination, scoring


# ----------------------------------------------------------------------------- open answers
def test_normalize_answer_is_squad():
    assert scoring.normalize_answer("The  Port, is: 7421!") == "port is 7421"
    assert scoring.normalize_answer("An Apple a day") == "apple day"


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
        "em": 0.0, "f1": pytest.approx(0.4), "substring": 1.0, "correct": 1.0}
    assert scoring.open_scores("7420", "7421") == {"em": 0.0, "f1": 0.0, "substring": 0.0, "correct": 0.0}
    assert scoring.matches("7421", None) is False


# ----------------------------------------------------------------------------- abstention
@pytest.mark.parametrize("answer", [prompts.ABSTAIN, "I don't know.", "i do not know", "I cannot answer that",
                                    "The name is not explicitly mentioned in the given text.",
                                    "The documents do not contain this.", "Not enough information."])
def test_abstentions_are_detected(answer):
    assert scoring.is_abstention(answer)


@pytest.mark.parametrize("answer", ["7421", "Knowledge base", "no", "The answer is in the documents: 4 MiB"])
def test_answers_are_not_abstentions(answer):
    assert not scoring.is_abstention(answer)


def test_abstention_list_holds_the_prompt_refusals():
    assert prompts.ABSTAIN in scoring.ABSTENTIONS and "I don't know" in scoring.ABSTENTIONS


# ----------------------------------------------------------------------------- multiple choice
def test_loglik_pick_first_on_ties_and_none_without_choices():
    assert scoring.loglik_pick([-3.0, -1.0, -1.0, -5.0]) == 1
    assert scoring.loglik_pick([]) is None


@pytest.mark.parametrize("answer,expected", [
    ("7421", 1), ("It is 7421.", 1), ("B", 1), ("(c)", 2), ("D.", 3), ("A) 7420", 0),
    ("7420 or 7421", None), ("I don't know", None), ("Z", None), ("4 MiB", 2)])
def test_generated_choice(answer, expected):
    choices = ["7420", "7421", "4 MiB", "4"] if answer == "4 MiB" else ["7420", "7421", "7422", "9464"]
    assert scoring.generated_choice(answer, choices) == expected


# ----------------------------------------------------------------------------- bootstrap
def test_bootstrap_all_ones_is_a_point():
    assert scoring.bootstrap_ci([1.0] * 20, samples=500, seed=3) == (1.0, 1.0)
    assert scoring.bootstrap_ci([], samples=10) is None


def test_bootstrap_known_case_matches_numpy_percentile():
    x = np.array([1, 0, 1, 1, 0, 1, 0, 1, 1, 1], dtype=float)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 10, size=(2000, 10))
    means = x[idx].mean(axis=1)
    expected = (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    got = scoring.bootstrap_ci(x.tolist(), samples=2000, seed=7)
    assert got == expected
    assert got[0] < 0.7 < got[1] and 0.0 <= got[0] and got[1] <= 1.0
    assert scoring.bootstrap_ci(x.tolist(), samples=2000, seed=7) == got  # seeded: reproducible


# ----------------------------------------------------------------------------- hallucination
def _row(answerable=True, abstained=False, gen_correct=False, quotes=0, unsupported=0, status="unchanged",
         correct=None, stale=False):
    return {"answerable": answerable, "abstained": abstained, "gen_correct": gen_correct, "quotes": quotes,
            "quotes_unsupported": unsupported, "status": status,
            "correct": gen_correct if correct is None else correct, "stale": stale}


def test_hallucination_rates_exact():
    rows = [
        _row(gen_correct=True, quotes=2, unsupported=0),  # right
        _row(gen_correct=False),  # confident-wrong
        _row(abstained=True),  # abstained on an answerable question: not confident-wrong
        _row(gen_correct=False, quotes=4, unsupported=1),  # confident-wrong
        _row(answerable=False, status="unanswerable", quotes=1, unsupported=1),  # answered the unanswerable
        _row(answerable=False, status="unanswerable", abstained=True),
        _row(answerable=False, status="unanswerable", abstained=True),
    ]
    assert hallucination.abstention_rate(rows)[0] == pytest.approx(3 / 7)
    assert hallucination.confident_wrong_rate(rows) == (0.5, [0.0, 1.0, 0.0, 1.0])
    assert hallucination.unanswerable_answered_rate(rows) == (pytest.approx(1 / 3), [1.0, 0.0, 0.0])
    # per quoting reply: 0/2, 1/4, 1/1 -> mean 0.41666...
    assert hallucination.unsupported_quote_rate(rows) == (pytest.approx(1.25 / 3), [0.0, 0.25, 1.0])
    assert hallucination.unsupported_quote_rate([_row()]) == (None, [])
    assert set(hallucination.DEFINITIONS) == set(hallucination.METRICS)


# ----------------------------------------------------------------------------- freshness
def test_stale_open_and_mc():
    assert freshness.is_stale_open("It is 1 MiB", "1 MiB", "4 MiB")
    assert not freshness.is_stale_open("4 MiB", "1 MiB", "4 MiB")
    assert not freshness.is_stale_open("1 MiB or 4 MiB", "1 MiB", "4 MiB")  # hedging both is not stale
    assert not freshness.is_stale_open("2 MiB", "1 MiB", "4 MiB")
    assert not freshness.is_stale_open("1 MiB", None, "4 MiB")
    assert freshness.is_stale_mc(0, 0) and not freshness.is_stale_mc(2, 0) and not freshness.is_stale_mc(None, 0)
    assert not freshness.is_stale_mc(0, None)


def test_accuracy_by_status_and_stale_rate():
    rows = [_row(status="unchanged", correct=True), _row(status="unchanged", correct=False),
            _row(status="changed", correct=True), _row(status="changed", correct=False, stale=True),
            _row(status="changed", correct=False, stale=False), _row(status="added", correct=True),
            _row(status="unanswerable", answerable=False)]
    acc = freshness.accuracy_by_status(rows)
    assert acc["unchanged"] == (0.5, [1.0, 0.0])
    assert acc["changed"] == (pytest.approx(1 / 3), [1.0, 0.0, 0.0])
    assert acc["added"] == (1.0, [1.0])
    assert freshness.stale_rate(rows) == (pytest.approx(1 / 3), [0.0, 1.0, 0.0])
    assert freshness.status_from_period("v2") == "added" and freshness.status_from_period("v1") == "unchanged"
