"""The evidence gate: calibration on (question, document) pairs, how a system resolves its
threshold, what a trained run carries, and `ask` refusing without generating."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from raftkit.errors import RaftkitError
from raftkit.retrieval import gate
from raftkit.retrieval.chunking import Chunk
from raftkit.retrieval.index import Hit
from raftkit.retrieval.rag import answer_questions
from raftkit.train.runfolder import evidence_gate


def _hit(rank: int, doc: str, score: float) -> Hit:
    return Hit(rank, score, Chunk(f"{doc}#0", doc, doc, f"text of {doc}", 0, 9))


class FakeIndex:
    """Question i finds its own document d{i} at score own[i], then another at other[i]."""

    def __init__(self, own: list[float], other: list[float], embedder: str = "mini"):
        self.own, self.other = own, other
        self.chunks = [None] * 100
        self.manifest = {"embedder": {"model": embedder}}

    def search(self, questions, k):
        out = []
        for q in questions:
            i = int(q[1:])
            out.append([_hit(1, f"d{i}", self.own[i]), _hit(2, f"x{i}", self.other[i])][:k])
        return out


def test_calibration_refuses_the_asked_share_of_answerable_and_counts_what_slips_through():
    own = [0.5 + 0.01 * i for i in range(20)]  # 0.50 .. 0.69
    other = [0.3] * 10 + [0.605] * 10  # half the absent cases score like weak answerable ones
    g = gate.calibrate(FakeIndex(own, other), [(f"q{i}", f"d{i}") for i in range(20)], 0.1)
    assert g["questions"] == 20 and g["embedder"] == "mini"
    assert 0.51 < g["min_score"] < 0.52  # the 10% quantile of the answerable scores
    assert g["answerable_refused"] == 0.1  # 0.50 and 0.51 fall below it
    assert g["absent_answered"] == 0.5  # the ten 0.605 scores pass it
    # AUC: every own score beats 0.3; only the nine from 0.61 up beat 0.605
    assert g["auc"] == pytest.approx((10 * 20 + 10 * 9) / 400)


def test_calibration_needs_ten_questions():
    assert (
        gate.calibrate(FakeIndex([0.5] * 9, [0.3] * 9), [(f"q{i}", f"d{i}") for i in range(9)], 0.1)
        is None
    )


def test_a_system_resolves_its_threshold(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(
        json.dumps({"evidence_gate": {"min_score": 0.42, "embedder": "mini"}})
    )
    index = FakeIndex([], [], embedder="mini")
    assert gate.resolve(0.3, "anything", index) == 0.3
    assert gate.resolve("off", str(run), index) is None
    assert gate.resolve("auto", str(run), index) == 0.42
    assert gate.resolve("auto", "smollm2-135m-instruct", index) is None  # no run, no gate
    with pytest.raises(RaftkitError, match="calibrated with embedder mini"):
        gate.resolve("auto", str(run), FakeIndex([], [], embedder="another-embedder"))


def test_a_trained_run_carries_its_builds_gate_or_its_starting_runs(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    mine = {"min_score": 0.4, "embedder": "mini"}
    (build / "manifest.json").write_text(json.dumps({"summary": {"evidence_gate": mine}}))
    assert evidence_gate(SimpleNamespace(data=SimpleNamespace(path=str(build)), model="m")) == mine
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "run.json").write_text(json.dumps({"evidence_gate": {"min_score": 0.5}}))
    other = SimpleNamespace(data=SimpleNamespace(path=str(tmp_path / "x.jsonl")), model=str(sft))
    assert evidence_gate(other) == {"min_score": 0.5}
    none = SimpleNamespace(data=SimpleNamespace(path=str(tmp_path / "x.jsonl")), model="m")
    assert evidence_gate(none) is None


class EchoGenerator:
    def __init__(self):
        self.asked = []

    def chat(self, conversations, desc=""):
        self.asked += conversations
        return ["<ANSWER>: 8080"] * len(conversations)


def test_ask_refuses_below_the_gate_without_generating():
    index = FakeIndex([0.9, 0.2], [0.1, 0.1])
    gen = EchoGenerator()
    kept, shut = answer_questions(index, gen, ["q0", "q1"], k=2, check=gate.Gate(min_score=0.5))
    assert len(gen.asked) == 1 and "q0" in gen.asked[0][-1]["content"]
    assert kept.answer == "8080" and shut.sources == []
    assert (
        "evidence gate" in shut.reply and shut.answer == "The documents do not contain the answer."
    )
    gen = EchoGenerator()
    assert [a.answer for a in answer_questions(index, gen, ["q0", "q1"], k=2)] == ["8080"] * 2


def test_min_score_off_survives_yaml():
    """YAML reads a bare `off` as false; the setting still means no gate, from --set and a file."""
    from raftkit import config
    from raftkit.compare.config import SystemConfig
    from raftkit.retrieval.config import RaftkitConfig

    cfg = config.load(RaftkitConfig, overrides=["retrieval.min_score=off"])
    assert cfg.retrieval.min_score == "off"
    assert (
        config.load(RaftkitConfig, overrides=["retrieval.min_score=0.4"]).retrieval.min_score == 0.4
    )
    assert (
        SystemConfig(name="s", model="m", mode="rag", index="i", min_score=False).min_score == "off"
    )


def test_auc_from_ranks_counts_ties_half():
    import numpy as np

    assert gate.auc(np.array([0.5, 0.7]), np.array([0.5, 0.6, 0.1])) == pytest.approx((1.5 + 3) / 6)
