"""Assembly of RAFT examples: oracle share, distractor counts and sources, splits, targets,
seeding."""

import numpy as np
import pytest

from raftkit.errors import RaftkitError
from raftkit.prompts import ABSTAIN, extract_answer, extract_quotes, is_abstention, quote_in
from raftkit.raft.assemble import DistractorPicker, assemble, oracle_flags, split_documents
from raftkit.raft.config import AssemblyConfig
from raftkit.raft.records import Record, Status
from raftkit.retrieval.chunking import Chunk


def corpus(n_docs=12, per_doc=4, seed=0):
    chunks = [
        Chunk(
            id=f"d{d}#{c}",
            doc_id=f"d{d}",
            title=f"Doc {d}",
            text=f"Doc {d} part {c}. Fact {d * 10 + c}.",
            start=0,
            end=10,
        )
        for d in range(n_docs)
        for c in range(per_doc)
    ]
    rng = np.random.default_rng(seed)
    # Chunks of one document share a direction, so hard distractors would be same-document if
    # allowed.
    base = rng.normal(size=(n_docs, 16))
    vectors = np.stack(
        [base[d] + 0.3 * rng.normal(size=16) for d in range(n_docs) for _ in range(per_doc)]
    )
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    return chunks, vectors


def records(chunks, per_chunk=3):
    return [
        Record(
            f"{c.id}/q{j}",
            f"What is fact {c.id} {j}?",
            "generated",
            oracle_id=c.id,
            doc_id=c.doc_id,
            answer=f"Fact {c.id}",
            cot=f"##begin_quote##{c.text}##end_quote##\n<ANSWER>: Fact {c.id}",
            status=Status.VERIFIED,
        )
        for c in chunks
        for j in range(per_chunk)
    ]


def build(mode="hard", p=0.8, k=4, target="abstain", eval_fraction=0.25, seed=0):
    chunks, vectors = corpus()
    cfg = AssemblyConfig(
        num_distractors=k,
        oracle_p=p,
        distractors=mode,
        absent_target=target,
        eval_fraction=eval_fraction,
        seed=seed,
    )
    splits = split_documents(sorted({c.doc_id for c in chunks}), cfg.eval_fraction, cfg.seed)
    picker = DistractorPicker(chunks, vectors, splits, cfg)
    return assemble(records(chunks), picker, cfg), chunks, vectors, splits


@pytest.mark.parametrize("mode", ["hard", "random"])
@pytest.mark.parametrize("p", [0.8, 0.5, 0.0, 1.0])
def test_oracle_share_and_exactly_k_distractors_from_other_documents(mode, p):
    examples, chunks, _, splits = build(mode=mode, p=p)
    every = examples["train"] + examples["eval"]
    assert len(every) == 144
    share = sum(e.oracle_present for e in every) / len(every)
    assert abs(share - p) <= 0.01  # an exact quota per split, not a Bernoulli draw
    doc_of = {c.id: c.doc_id for c in chunks}
    for e in every:
        assert len(e.distractor_ids) == 4 and len(set(e.distractor_ids)) == 4
        assert len(e.context_ids) == len(e.context) == 5 and len(set(e.context_ids)) == 5
        assert (e.oracle_id in e.context_ids) == e.oracle_present
        assert set(e.distractor_ids) <= set(e.context_ids)
        assert all(doc_of[d] != e.doc_id for d in e.context_ids if d != e.oracle_id)
        assert all(
            splits[doc_of[d]] == splits[e.doc_id] for d in e.context_ids
        )  # no leak across splits


def test_no_eval_document_in_train_and_eval_share_follows_fraction():
    examples, _, _, splits = build(eval_fraction=0.25)
    train_docs = {e.doc_id for e in examples["train"]}
    eval_docs = {e.doc_id for e in examples["eval"]}
    assert not train_docs & eval_docs
    assert (
        sorted(eval_docs) == sorted(d for d, s in splits.items() if s == "eval")
        and len(eval_docs) == 3
    )


def test_hard_distractors_are_the_nearest_chunks_of_other_documents():
    examples, chunks, vectors, splits = build(mode="hard", eval_fraction=0.0)
    idx = {c.id: i for i, c in enumerate(chunks)}
    e = next(e for e in examples["train"] if e.oracle_present)
    o = vectors[idx[e.oracle_id]]
    others = [c for c in chunks if c.doc_id != e.doc_id]
    nearest = sorted(others, key=lambda c: -float(vectors[idx[c.id]] @ o))[:4]
    assert e.distractor_ids == [c.id for c in nearest]


def test_absent_oracle_targets_abstain_or_memorize():
    absent = [e for e in build(target="abstain")[0]["train"] if not e.oracle_present]
    assert absent and all(
        e.cot_answer == f"<ANSWER>: {ABSTAIN}"
        and e.target_answer == ABSTAIN
        and e.answer == f"Fact {e.oracle_id}"
        for e in absent
    )  # answer: the reference
    absent = [e for e in build(target="memorize")[0]["train"] if not e.oracle_present]
    assert absent and all(
        e.cot_answer.startswith("##begin_quote##") and e.target_answer == e.answer for e in absent
    )


def test_rejected_quotes_a_distractor_not_the_oracle():
    _, chunks, _, _ = build()
    text = {c.id: c.text for c in chunks}
    for e in build()[0]["train"]:
        quotes = extract_quotes(e.rejected_cot)
        assert quotes and all(quote_in(q, [text[e.distractor_ids[0]]]) for q in quotes)
        assert not any(quote_in(q, [text[e.oracle_id]]) for q in quotes)
        assert extract_answer(e.rejected_cot) != "Fact " + e.oracle_id


def test_assembly_is_seeded_and_the_seed_matters():
    a, b, c = build(seed=0)[0], build(seed=0)[0], build(seed=1)[0]
    assert a == b
    assert [e.context_ids for e in a["train"]] != [e.context_ids for e in c["train"]]


def test_oracle_flags_exact_quota_and_split_rounding():
    flags = oracle_flags([f"x{i}" for i in range(10)], 0.8, 0)
    assert sum(flags.values()) == 8
    assert sorted(split_documents(["a", "b"], 0.1, 0).values()) == [
        "eval",
        "train",
    ]  # at least one eval doc
    assert set(split_documents(["a", "b", "c"], 0.0, 0).values()) == {"train"}


def test_too_few_chunks_outside_the_oracle_document_is_a_clear_error():
    chunks, vectors = corpus(n_docs=2, per_doc=2)
    cfg = AssemblyConfig(num_distractors=4, eval_fraction=0.0)
    picker = DistractorPicker(chunks, vectors, {"d0": "train", "d1": "train"}, cfg)
    with pytest.raises(
        RaftkitError,
        match=r"^4 distractors \(\+1 to replace a dropped oracle\) need 5 chunks "
        r"outside 'd0', the corpus has 2; lower assembly.num_distractors",
    ):
        assemble(records(chunks[:1], 1), picker, cfg)


def test_small_split_borrows_chunks_from_the_other_split_and_counts_it():
    chunks, vectors = corpus(n_docs=4, per_doc=1)
    cfg = AssemblyConfig(num_distractors=2, eval_fraction=0.5)
    splits = {"d0": "eval", "d1": "eval", "d2": "train", "d3": "train"}
    picker = DistractorPicker(chunks, vectors, splits, cfg)
    out = assemble(records(chunks[:1], 1), picker, cfg)
    assert len(out["eval"][0].context_ids) == 3 and picker.fallbacks == 1


def test_rejected_with_oracle_can_be_the_refusal():
    chunks, vectors = corpus()
    cfg = AssemblyConfig(oracle_p=0.5, rejected_with_oracle="refusal")
    picker = DistractorPicker(
        chunks, vectors, split_documents(sorted({c.doc_id for c in chunks}), 0.25, 0), cfg
    )
    every = [e for split in assemble(records(chunks), picker, cfg).values() for e in split]
    shown = [e for e in every if e.oracle_present]
    absent = [e for e in every if not e.oracle_present]
    assert shown and all(e.rejected_cot == f"<ANSWER>: {ABSTAIN}" for e in shown)
    # without the oracle: the refusal is chosen, an answer from a distractor rejected
    assert absent and all(e.cot_answer == f"<ANSWER>: {ABSTAIN}" != e.rejected_cot for e in absent)


def test_contrast_gives_each_question_a_minimal_pair():
    chunks, vectors = corpus()
    cfg = AssemblyConfig(contrast=True, oracle_p=0.8)
    picker = DistractorPicker(
        chunks, vectors, split_documents(sorted({c.doc_id for c in chunks}), 0.25, 0), cfg
    )
    every = [e for split in assemble(records(chunks), picker, cfg).values() for e in split]
    assert (
        len(every) == 2 * 144 and sum(e.oracle_present for e in every) == 144
    )  # oracle_p is ignored
    by_id = {e.id: e for e in every}
    for e in every:
        if e.oracle_present:
            pair = by_id[f"{e.id}/absent"]
            slot = e.context_ids.index(e.oracle_id)
            # the same distractors in the same places; the filler sits where the oracle was
            assert [c for i, c in enumerate(e.context_ids) if i != slot] == [
                c for i, c in enumerate(pair.context_ids) if i != slot
            ]
            assert (
                pair.context_ids[slot] != e.oracle_id and pair.cot_answer == f"<ANSWER>: {ABSTAIN}"
            )


def test_quote_first_refusals_copy_the_closest_shown_sentence_then_refuse():
    """assembly.refusal=quote: a refusal opens with a quote of a shown sentence (the one closest to
    the question) and says it does not answer; where the oracle is shown, the rejected refusal
    quotes what the chosen answer quotes, so the pair differs only in the verdict."""
    chunks, vectors = corpus()
    cfg = AssemblyConfig(contrast=True, rejected_with_oracle="refusal", refusal="quote")
    picker = DistractorPicker(
        chunks, vectors, split_documents(sorted({c.doc_id for c in chunks}), 0.25, 0), cfg
    )
    every = [e for split in assemble(records(chunks), picker, cfg).values() for e in split]
    absent = [e for e in every if not e.oracle_present]
    assert absent
    for e in absent:
        quotes = extract_quotes(e.cot_answer)
        assert len(quotes) == 1 and any(quotes[0] in text for text in e.context)
        assert e.cot_answer.endswith(f"does not answer the question.\n<ANSWER>: {ABSTAIN}")
        assert is_abstention(extract_answer(e.cot_answer)) and e.target_answer == ABSTAIN
    for e in (e for e in every if e.oracle_present):
        assert extract_quotes(e.rejected_cot) == extract_quotes(e.cot_answer)
        assert e.rejected_cot.endswith(ABSTAIN) and not e.cot_answer.endswith(ABSTAIN)
        # the answered verdict is one fixed string too: one token after the quote decides
        assert "This sentence answers the question.\n<ANSWER>: Fact " in e.cot_answer
        assert extract_answer(e.cot_answer) == e.answer
