"""Output formats: one HF DatasetDict plus JSONL in chat, prompt/completion, preference and DSF
form.

The prompt is `prompts.rag_messages` (the one `raftkit ask` and `raftkit compare` use), so a model
trained on these files is evaluated on the prompt it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from raftkit import files, outputs
from raftkit.prompts import ANSWER_TAG, closed_book_messages, rag_messages
from raftkit.raft.records import RaftExample

SPLITS = ("train", "eval")
COLUMNS = (
    "id",
    "question",
    "answer",
    "target_answer",
    "cot_answer",
    "doc_id",
    "oracle_id",
    "context_ids",
    "context",
    "oracle_present",
    "distractor_ids",
    "quote_status",
    "choices",
    "answer_index",
    "messages",
    "prompt",
    "completion",
    "chosen",
    "rejected",
)


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def to_row(example: RaftExample) -> dict:
    """An assembled example as a dataset row (the columns of COLUMNS)."""
    prompt = rag_messages(example.question, example.context, example.titles)
    completion = _assistant(example.cot_answer)
    fields = asdict(example)
    row = {k: fields[k] for k in COLUMNS if k in fields}
    row.update(
        messages=prompt + completion,
        prompt=prompt,
        completion=completion,
        chosen=completion,
        rejected=_assistant(example.rejected_cot),
    )
    return row


def dsf_row(example: RaftExample) -> dict:
    """Closed-book prompt -> `<ANSWER>: answer` (domain-specific fine-tuning, the paper's
    baseline)."""
    return {
        "prompt": closed_book_messages(example.question),
        "completion": _assistant(f"{ANSWER_TAG} {example.answer}"),
    }


def _features():
    from datasets import Features, List, Value

    msgs = List({"role": Value("string"), "content": Value("string")})
    strings = List(Value("string"))
    kinds = {
        "context_ids": strings,
        "context": strings,
        "distractor_ids": strings,
        "choices": strings,
        "answer_index": Value("int64"),
        "oracle_present": Value("bool"),
        "messages": msgs,
        "prompt": msgs,
        "completion": msgs,
        "chosen": msgs,
        "rejected": msgs,
    }
    return Features({c: kinds.get(c, Value("string")) for c in COLUMNS})


def write_outputs(examples: dict[str, list[RaftExample]], out: Path):
    """Write OUT/dataset (save_to_disk) and the JSONL files; returns the DatasetDict."""
    from datasets import Dataset, DatasetDict
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    rows = {s: [to_row(e) for e in examples[s]] for s in SPLITS}
    features = _features()
    # from_list cannot type an empty split (eval_fraction 0); from_dict of empty columns can.
    dd = DatasetDict(
        {
            s: Dataset.from_list(rows[s], features=features)
            if rows[s]
            else Dataset.from_dict({c: [] for c in COLUMNS}, features=features)
            for s in SPLITS
        }
    )
    was_disabled = are_progress_bars_disabled()
    # a "Saving the dataset" bar per split says nothing the summary does not
    disable_progress_bars()
    try:
        with outputs.staged(out / "dataset") as tmp:
            # One shard per split even when a split is empty: datasets writes no arrow file for an
            # empty split otherwise, and load_from_disk then fails on it (eval_fraction 0).
            dd.save_to_disk(str(tmp), num_shards={s: 1 for s in SPLITS})
    finally:
        if not was_disabled:
            enable_progress_bars()
    for s in SPLITS:
        files.write_jsonl(out / f"chat_{s}.jsonl", [{"messages": r["messages"]} for r in rows[s]])
        files.write_jsonl(
            out / f"completion_{s}.jsonl",
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows[s]],
        )
        files.write_jsonl(
            out / f"preference_{s}.jsonl",
            [
                {"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
                for r in rows[s]
            ],
        )
        files.write_jsonl(out / f"dsf_{s}.jsonl", [dsf_row(e) for e in examples[s]])
    return dd
