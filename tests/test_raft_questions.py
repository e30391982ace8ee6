"""Question prompt, parsing and de-duplication of `raftkit build-dataset`."""

import numpy as np

from raftkit.raft.questions import dedup, parse_questions, question_messages


def test_parse_strips_numbering_bullets_and_drops_non_questions():
    reply = """Sure! Here are three questions about the text:

1. When did Mount Skarn last erupt?
2) How tall is Mount Skarn? It is 3,412 metres.
- Who needs a permit?
* Q3: what monitors the volcano?
Question 4: How many seismometers are there?
This line is not a question.
Why?
5. When did Mount Skarn last erupt?
"""
    assert parse_questions(reply) == [
        "When did Mount Skarn last erupt?",
        "How tall is Mount Skarn?",
        "Who needs a permit?",
        "What monitors the volcano?",
        "How many seismometers are there?",
    ]


def test_parse_limit_and_empty_reply():
    assert parse_questions(
        "1. What is A here?\n2. What is B here?\n3. What is C here?", limit=2
    ) == ["What is A here?", "What is B here?"]
    assert parse_questions("") == []
    assert parse_questions("No questions today.\n\n") == []


def test_parse_drops_repeats_that_differ_only_in_case_and_punctuation():
    assert parse_questions("What is the port?\nwhat is the PORT ?\n**What is the port?**") == [
        "What is the port?"
    ]


def test_dedup_keeps_first_of_near_identical_questions():
    v = np.array([[1, 0, 0], [0.99, 0.141, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    questions = ["a?", "a again?", "b?", "c?"]
    assert dedup(questions, v, 0.95) == [0, 2, 3]
    assert dedup(questions, v, 0.999) == [0, 1, 2, 3]


def test_question_prompt_is_few_shot_and_asks_for_n():
    msgs = question_messages("Some text.", 2)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "Text: Some text.\nWrite 2 questions."
    assert len(msgs[2]["content"].splitlines()) == 2  # the shot shows as many questions as asked
