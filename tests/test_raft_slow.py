"""The real SmolLM2-135M model writes questions and answers for two chunks (slow: CPU
generation)."""

import pytest

from raftkit import config
from raftkit.prompts import extract_quotes, quote_in
from raftkit.raft.build import build_dataset
from raftkit.raft.config import RaftBuildConfig


@pytest.mark.slow
def test_real_model_writes_grounded_examples_for_two_chunks(built_index, docs_dir, tmp_path):
    from raftkit.generate import make_generator
    from raftkit.models import runtime

    cfg = config.load(
        RaftBuildConfig,
        overrides=[
            "questions.max_chunks=2",
            "questions.per_chunk=1",
            "questions.max_new_tokens=24",
            "answers.max_new_tokens=40",
            "assembly.num_distractors=2",
            "assembly.eval_fraction=0",
            "assembly.oracle_p=1",
            "checkpoint_every=2",
        ],
    )
    calls = []

    class Counting:  # the real generator, with its calls recorded
        inner = make_generator(cfg.generation, runtime(cfg.runtime))

        def chat(self, conversations, max_new_tokens=None, desc=""):
            calls.append((desc, len(conversations), max_new_tokens))
            return self.inner.chat(conversations, max_new_tokens=max_new_tokens, desc=desc)

    result = build_dataset(cfg, docs_dir, tmp_path / "out", generator=Counting(), index=built_index)
    dd = result.dataset
    # One batched call per stage: both chunks' question prompts together, then every answer prompt.
    assert calls[0] == ("questions", 2, 24)
    assert calls[1][0] == "answers" and calls[1][1] <= 2 and len(calls) == 2
    s = result.summary
    assert s["chunks_asked"] == 2 and s["questions"] == calls[1][1]
    assert s["quote_verified_share"] + s["quote_repaired_share"] + s[
        "dropped_share"
    ] == pytest.approx(1.0)
    text = {c.id: c.text for c in built_index.chunks}
    assert len(dd["train"]) >= 1  # the 135M model answers at least one of two questions usably
    for row in dd["train"]:
        assert row["oracle_present"] and row["oracle_id"] in {c.id for c in built_index.chunks[:2]}
        assert row["cot_answer"].rsplit("<ANSWER>: ", 1)[1].strip()
        quotes = extract_quotes(row["cot_answer"])
        assert quotes and all(quote_in(q, [text[row["oracle_id"]]]) for q in quotes)
