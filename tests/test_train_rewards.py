"""The RLHF rule rewards score exactly what RAFT teaches."""

from raftkit.prompts import rag_messages
from raftkit.train.rewards import answer_reward, format_reward, quote_reward

DOCS = ["Quillon listens on port 7420 by default.", "Quillon keeps messages for 7 days."]
PROMPT = rag_messages("Which port?", DOCS)


def reply(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_quote_reward_is_the_share_of_verbatim_quotes():
    good = reply(
        "##begin_quote##Quillon listens on port   7420 by default.##end_quote## <ANSWER>: 7420"
    )
    half = reply(
        "##begin_quote##listens on port 7420##end_quote## ##begin_quote##port 9999##end_quote##"
    )
    none = reply("<ANSWER>: 7420")
    assert quote_reward([PROMPT] * 3, [good, half, none], context=[DOCS] * 3) == [1.0, 0.5, 0.0]
    # without a context column the documents are read from the prompt itself
    assert quote_reward([PROMPT] * 2, [good, half]) == [1.0, 0.5]


def test_format_reward():
    assert format_reward([reply("so <ANSWER>: 7420"), reply("7420")]) == [1.0, 0.0]


def test_answer_reward_normalises_and_skips_rows_without_reference():
    completions = [
        reply("<ANSWER>: The Port 7420."),
        reply("<ANSWER>: port 7420 by default"),
        reply("<ANSWER>: 80"),
        reply("7420"),
    ]
    assert answer_reward(completions, answer=["port 7420"] * 4) == [1.0, 0.5, 0.0, 0.0]
    assert answer_reward(completions[:1], answer=[None]) == [None]
    assert answer_reward(completions[:1]) == [None]


def test_answer_reward_follows_the_training_target_when_the_oracle_was_dropped():
    from raftkit.prompts import ABSTAIN

    completions = [f"<ANSWER>: {ABSTAIN}", "<ANSWER>: port 7420"]
    # Row 0: oracle dropped, target is the refusal; row 1: oracle shown, target is the answer.
    got = answer_reward(
        completions, answer=["port 7420", "port 7420"], target_answer=[ABSTAIN, "port 7420"]
    )
    assert got == [1.0, 1.0]
    assert answer_reward(completions[:1], answer=["port 7420"]) == [
        0.0
    ]  # without target_answer: the answer
