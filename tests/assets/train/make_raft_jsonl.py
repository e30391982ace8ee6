"""Writes raft_train.jsonl / raft_eval.jsonl: hand-written RAFT rows in the build-dataset columns.

Run from the repo root: `.venv/bin/python tests/assets/train/make_raft_jsonl.py`. Facts are invented
(the Quillon message broker) so no model knows them.
"""

import json
from pathlib import Path

from raftkit.prompts import ANSWER_TAG, BEGIN_QUOTE, END_QUOTE, rag_messages

FACTS = [
    (
        "What port does Quillon listen on by default?",
        "7420",
        "Quillon listens on port 7420 by default.",
    ),
    (
        "How many partitions does a new Quillon topic get?",
        "12",
        "A new Quillon topic gets 12 partitions.",
    ),
    (
        "Which file holds the Quillon settings?",
        "quillon.toml",
        "All Quillon settings live in quillon.toml.",
    ),
    (
        "How long does Quillon keep messages?",
        "7 days",
        "Quillon keeps messages for 7 days unless told otherwise.",
    ),
    (
        "What is the largest Quillon message?",
        "4 MiB",
        "The largest message Quillon accepts is 4 MiB.",
    ),
    (
        "Which command starts a Quillon broker?",
        "quillon serve",
        "The command quillon serve starts a broker.",
    ),
    (
        "What language is Quillon written in?",
        "Zig",
        "Quillon is written in Zig for predictable latency.",
    ),
    (
        "How often does Quillon flush to disk?",
        "every 200 ms",
        "Quillon flushes its log to disk every 200 ms.",
    ),
    (
        "What is the default Quillon replication factor?",
        "3",
        "Quillon replicates each partition 3 times by default.",
    ),
    (
        "Which metrics format does Quillon export?",
        "OpenMetrics",
        "Quillon exports its metrics in OpenMetrics format.",
    ),
    ("What is the Quillon admin UI called?", "Lantern", "The Quillon admin UI is called Lantern."),
    (
        "How many consumer groups can a Quillon topic have?",
        "64",
        "A Quillon topic serves at most 64 consumer groups.",
    ),
    ("Which compression does Quillon use?", "zstd", "Quillon compresses batches with zstd."),
    ("What year was Quillon first released?", "2019", "Quillon was first released in 2019."),
    (
        "Which license covers Quillon?",
        "MPL-2.0",
        "Quillon is distributed under the MPL-2.0 license.",
    ),
    (
        "What is the Quillon client library for Python?",
        "pyquill",
        "The Python client for Quillon is pyquill.",
    ),
    (
        "What does Quillon call a stalled consumer?",
        "a laggard",
        "Quillon calls a stalled consumer a laggard.",
    ),
    ("Which port serves Quillon metrics?", "9464", "Quillon serves metrics on port 9464."),
    ("How are Quillon tenants isolated?", "by namespace", "Quillon isolates tenants by namespace."),
    (
        "What is the Quillon heartbeat interval?",
        "3 seconds",
        "Quillon brokers send a heartbeat every 3 seconds.",
    ),
]


def row(i: int) -> dict:
    question, answer, sentence = FACTS[i]
    distractors = [FACTS[(i + k) % len(FACTS)][2] for k in (3, 7)]
    context = [f"{sentence} It is documented in the operations guide.", *distractors]
    cot = (
        f"The document says {BEGIN_QUOTE}{sentence}{END_QUOTE} so the answer is {answer}.\n"
        f"{ANSWER_TAG} {answer}"
    )
    ungrounded = f"I believe it is probably something else entirely.\n{ANSWER_TAG} unknown"
    prompt = rag_messages(question, context)
    completion = [{"role": "assistant", "content": cot}]
    return {
        "id": f"q{i:02d}",
        "question": question,
        "answer": answer,
        "cot_answer": cot,
        "doc_id": f"doc{i:02d}",
        "oracle_id": f"doc{i:02d}#0",
        "context_ids": [f"doc{i:02d}#0", "x#1", "y#2"],
        "context": context,
        "oracle_present": True,
        "messages": prompt + completion,
        "prompt": prompt,
        "completion": completion,
        "chosen": completion,
        "rejected": [{"role": "assistant", "content": ungrounded}],
    }


if __name__ == "__main__":
    here = Path(__file__).parent
    rows = [row(i) for i in range(len(FACTS))]
    for name, part in (("raft_train.jsonl", rows[:16]), ("raft_eval.jsonl", rows[16:])):
        (here / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    # SFT-only data (no pairs): what a reward run must refuse
    (here / "chat_only.jsonl").write_text(
        "".join(json.dumps({"messages": r["messages"]}) + "\n" for r in rows[:4])
    )
