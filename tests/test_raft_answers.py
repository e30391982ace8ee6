"""Quote verification, repair and the deterministic CoTs of `raftkit build-dataset`."""

from raftkit.prompts import extract_quotes, quote_in
from raftkit.raft.answers import (
    answer_messages,
    deterministic_cot,
    distractor_cot,
    sentences,
    verify,
    wrong_answer,
)

ORACLE = (
    "Norland has three active volcanoes. "
    "The tallest, Mount Skarn, rises 3,412 metres above sea level\n"
    "and last erupted in 1987. The Skarn Observatory monitors it with 14 seismometers.\n\n"
    "Visitors need a permit from the Norland Geological Survey to climb above 2,000 metres."
)
Q = "How many seismometers monitor Mount Skarn?"


def test_sentences_are_substrings_split_on_lines_and_full_stops():
    assert sentences(ORACLE) == [
        "Norland has three active volcanoes.",
        "The tallest, Mount Skarn, rises 3,412 metres above sea level",
        "and last erupted in 1987.",
        "The Skarn Observatory monitors it with 14 seismometers.",
        "Visitors need a permit from the Norland Geological Survey to climb above 2,000 metres.",
    ]


def test_verified_quote_passes_unchanged_even_across_a_line_break():
    reply = (
        "##begin_quote##rises 3,412   metres above sea level and last erupted##end_quote## so it "
        "is tall.\n<ANSWER>: 3,412 metres"
    )
    g = verify(reply, "How tall is Mount Skarn?", ORACLE)
    assert (g.status, g.answer) == ("verified", "3,412 metres")
    assert g.cot == reply


def test_misquote_is_repaired_with_the_closest_oracle_sentence():
    reply = (
        "The text says: ##begin_quote##The Skarn Observatory watches it with 12 seismometers."
        "##end_quote##\n<ANSWER>: 14"
    )
    g = verify(reply, Q, ORACLE)
    assert g.status == "repaired"
    assert g.cot == (
        "The text says: ##begin_quote##The Skarn Observatory monitors it with 14 seismometers."
        "##end_quote##\n<ANSWER>: 14"
    )


def test_unrelated_misquote_is_dropped_and_drop_policy_drops_any_misquote():
    g = verify("##begin_quote##Bananas are yellow fruit.##end_quote##\n<ANSWER>: 14", Q, ORACLE)
    assert (g.status, g.reason) == ("dropped", "quote matches no oracle sentence")
    reply = (
        "##begin_quote##The Skarn Observatory watches it with 12 seismometers.##end_quote##\n"
        "<ANSWER>: 14"
    )
    g = verify(reply, Q, ORACLE, on_bad_quote="drop")
    assert (g.status, g.reason) == ("dropped", "quote not in oracle")


def test_missing_quote_is_inserted_and_missing_answer_tag_is_derived():
    g = verify("It is watched closely.\nSo 14 seismometers.", Q, ORACLE)
    assert g.status == "repaired"
    assert g.answer == "14 seismometers"
    assert g.cot == (
        "##begin_quote##The Skarn Observatory monitors it with 14 seismometers.##end_quote## "
        "It is watched closely.\nSo 14 seismometers.\n<ANSWER>: 14 seismometers"
    )


def test_reply_cut_off_inside_a_quote_loses_the_open_quote():
    reply = (
        "##begin_quote##Norland has three active volcanoes.##end_quote## Also "
        "##begin_quote##The tallest, Mou"
    )
    g = verify(reply + "\n<ANSWER>: three", "How many active volcanoes does Norland have?", ORACLE)
    assert g.status == "repaired"
    assert (
        g.cot
        == "##begin_quote##Norland has three active volcanoes.##end_quote## Also\n<ANSWER>: three"
    )


def test_empty_or_answerless_replies_are_dropped():
    assert verify("", Q, ORACLE).reason == "empty reply"
    assert verify("<ANSWER>:   ", Q, ORACLE).reason == "no answer"


def test_every_kept_cot_has_only_oracle_quotes_and_ends_with_the_answer():
    replies = [
        "##begin_quote##14 seismometers##end_quote##\n<ANSWER>: 14",
        "##begin_quote##Skarn Observatory has 14 sensors##end_quote##<ANSWER>: 14",
        "14",
        "<ANSWER>: 14",
    ]
    for reply in replies:
        g = verify(reply, Q, ORACLE)
        assert g.status in ("verified", "repaired")
        assert extract_quotes(g.cot) and all(quote_in(q, [ORACLE]) for q in extract_quotes(g.cot))
        assert g.cot.endswith(f"<ANSWER>: {g.answer}")


def test_deterministic_cot_quotes_the_sentence_holding_the_answer():
    g = deterministic_cot(Q, "14", ORACLE, key="q1")
    assert g.status == "verified"
    assert extract_quotes(g.cot) == ["The Skarn Observatory monitors it with 14 seismometers."]
    assert g.cot.endswith("\n<ANSWER>: 14")
    assert deterministic_cot(Q, "14", ORACLE, key="q1").cot == g.cot  # same key, same template


def test_deterministic_cot_without_the_answer_in_text_quotes_the_closest_sentence_and_adds_the_reason():  # noqa: E501
    g = deterministic_cot(
        "Do visitors need a permit to climb high?",
        "yes",
        ORACLE,
        key="k",
        reason="A permit is required above 2,000 metres.",
    )
    assert extract_quotes(g.cot) == [
        "Visitors need a permit from the Norland Geological Survey to climb above 2,000 metres."
    ]
    assert "A permit is required above 2,000 metres. " in g.cot
    assert g.cot.endswith("<ANSWER>: yes")


def test_wrong_answer_prefers_another_choice_else_a_span_of_the_distractor():
    assert wrong_answer("Q?", "14", "", ["12", "14", "16"], "k") in ("12", "16")
    assert wrong_answer("Q?", "yes", "", ["yes"], "k") != "yes"
    # Without choices: a span of the answer's kind (number, name, else any new word), as long as the
    # answer.
    sentence = "The bakery opened in 1998 on Dock Road near Ilse Marten's house."
    assert wrong_answer("When did the bakery open?", "2003", sentence, None, "k") == "1998"
    assert (
        wrong_answer("Who founded the bakery?", "Piet Haldor", sentence, None, "k") == "Dock Road"
    )
    assert (
        wrong_answer("What does the bakery sell?", "rye bread", sentence, None, "k") == "opened in"
    )


def test_distractor_cot_quotes_the_distractor_and_answers_wrongly():
    distractor = "The Blue Fern Bakery opened in 2003 on Harbour Street. It closes on Mondays."
    g = distractor_cot(Q, "14", distractor, ["14", "9"], "k")
    assert g.answer == "9"
    assert all(quote_in(q, [distractor]) for q in extract_quotes(g.cot))
    assert not any(quote_in(q, [ORACLE]) for q in extract_quotes(g.cot))


def test_answer_prompt_is_one_shot_with_the_oracle_only():
    msgs = answer_messages(Q, ORACLE)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == f"Text: {ORACLE}\nQuestion: {Q}"
    assert extract_quotes(msgs[2]["content"])  # the shot shows the quote format


def test_answer_tag_cut_off_by_the_token_limit_is_derived_from_the_reasoning():
    g = verify(
        "##begin_quote##Norland has three active volcanoes.##end_quote##\nSo three volcanoes.\n"
        "<ANSWER>:",
        "How many active volcanoes does Norland have?",
        ORACLE,
    )
    assert (g.status, g.answer) == ("repaired", "three volcanoes")
    assert g.cot.endswith("So three volcanoes.\n<ANSWER>: three volcanoes")
