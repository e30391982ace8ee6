"""The evidence verifier: its head learns, the stage trains and calibrates from a build with no new
labels, and `ask`/`compare` refuse through it; bad input is one clear error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from raftkit.cli import main
from raftkit.errors import RaftkitError
from raftkit.retrieval import gate
from raftkit.retrieval import verifier as V

TOWNS = [
    ("Arlen", "Mira Voss", "river Tamm"),
    ("Bexley", "Oskar Lind", "river Pell"),
    ("Corvin", "Hana Ruiz", "river Odd"),
    ("Dunmore", "Ivo Brandt", "river Sile"),
    ("Eskar", "Lena Holt", "river Vey"),
    ("Fenwick", "Tomas Berg", "river Ashe"),
    ("Galloway", "Nora Quist", "river Ulm"),
    ("Harrow", "Pia Stenmark", "river Kell"),
    ("Ilford", "Jon Aberg", "river Rhee"),
    ("Jarrow", "Eva Lund", "river Mox"),
    ("Kestrel", "Ali Demir", "river Nyth"),
    ("Lowick", "Sara Falk", "river Bree"),
]


def _corpus(tmp_path):
    docs, qa = [], []
    for n, (town, mayor, river) in enumerate(TOWNS):
        text = (
            f"{town} is a market town of {1000 + 137 * n} people. The mayor of {town} is {mayor}, "
            f"elected last spring. The {river} flows through {town} on its way to the sea."
        )
        docs.append({"id": town.lower(), "title": town, "text": text})
        qa.append(
            {"question": f"Who is the mayor of {town}?", "answer": mayor, "doc_ids": [town.lower()]}
        )
        qa.append(
            {
                "question": f"Which river flows through {town}?",
                "answer": river,
                "doc_ids": [town.lower()],
            }
        )
    corpus, qa_path = tmp_path / "towns.jsonl", tmp_path / "qa.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    qa_path.write_text("".join(json.dumps(r) + "\n" for r in qa))
    return corpus, qa_path


# The hashed-word embedder ranks pages poorly; judging every page isolates the verifier's reading.
K = len(TOWNS)


@pytest.fixture
def trained(tmp_path, hash_embedder, monkeypatch):
    """(the verifier run, the build, the indexes folder) of a build of 12 town pages."""
    monkeypatch.setenv("RAFTKIT_QUIET", "1")
    corpus, qa = _corpus(tmp_path)
    idx, build, run = tmp_path / "indexes", tmp_path / "build", tmp_path / "ver"
    assert main(["build-dataset", str(corpus), "--qa", str(qa), "--out", str(build),
                 "--config", "recipes/raft_build_abstain.yaml",
                 "--set", f"retrieval.indexes_dir={idx}",
                 "--set", "index_name=towns", "--set", "assembly.num_distractors=2",
                 "--set", "assembly.eval_fraction=0"]) == 0  # fmt: skip
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}", "--set", f"verifier.top_k={K}"]) == 0  # fmt: skip
    return run, build, idx


def test_head_learns_a_separable_feature_and_ignores_noise():
    rng = np.random.default_rng(0)
    signal = np.r_[rng.normal(1, 0.3, 200), rng.normal(-1, 0.3, 200)]
    x = np.stack([signal, rng.normal(0, 1, 400)], 1)
    y = np.r_[np.ones(200), np.zeros(200)]
    head = V.fit_head(x, y, ("signal", "noise"))
    p = V.predict(head, x)
    assert (p[:200] > 0.5).mean() > 0.95 and (p[200:] < 0.5).mean() > 0.95
    assert abs(head["weights"][0]) > 5 * abs(head["weights"][1])


def test_lexical_coverage_sees_the_missing_name():
    idf = V.idf_of(["the mayor of Arlen is Mira", "the mayor of Bexley is Oskar", "a river"])
    own = V.lexical("Who is the mayor of Arlen?", "The mayor of Arlen is Mira Voss.", idf)
    other = V.lexical("Who is the mayor of Arlen?", "The mayor of Bexley is Oskar Lind.", idf)
    assert own[0] == 1.0 and own[1] == 1.0
    assert other[0] < own[0] and other[1] == 0.0  # the rarest word, the town, is what is missing


def test_lexical_features_do_not_depend_on_the_process_string_hashing():
    """Words of equal rarity: which of them make the rarest third must not follow a set's order,
    which changes with PYTHONHASHSEED from one process to the next."""
    import subprocess
    import sys

    code = (
        "from raftkit.retrieval.verifier import lexical, idf_of;"
        "q = 'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima';"
        "print(lexical(q, 'alpha bravo charlie delta', idf_of(['x'])))"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(6)
    }
    assert len(seen) == 1, seen


def test_stage_trains_and_calibrates_out_of_fold(trained):
    run, _, _ = trained
    head = json.loads((run / V.HEAD_FILE).read_text())
    summary = json.loads((run / "run.json").read_text())
    assert summary["stage"] == "verifier" and summary["questions"] == 2 * len(TOWNS)
    assert head["features"] == ["cosine", "coverage", "rare", "bigrams"]
    cal = head["calibration"]
    assert cal["questions"] == 2 * len(TOWNS) and cal["over_refusal"] == 0.2
    for judge in ("verifier", "cosine", "both"):
        assert 0.0 <= cal[judge]["auc"] <= 1.0 and "threshold" in cal[judge]
    # the town's name is in its own page only: reading for it separates what the cosine blurs
    assert cal["verifier"]["auc"] >= 0.9
    assert cal["verifier"]["auc"] >= cal["cosine"]["auc"]
    assert head["threshold"] == cal["verifier"]["threshold"]
    assert (run / "config.yaml").is_file() or any(run.glob("*.yaml"))  # resolved config beside it


def test_option_score_reads_the_answer_not_the_topic():
    page = "The mayor of Arlen is Mira Voss, elected last spring."
    assert V.option_score(["Oskar Lind", "Mira Voss"], page) == 1.0
    assert V.option_score(["Oskar Lind", "Hana Ruiz"], page) == 0.0
    assert V.option_score(["Mira Lind"], page) == 0.5  # half the option's words


def test_questions_with_answer_options_get_their_own_head(trained):
    """The options head (trained on the build's answers and spans of their kind as options)
    prefers the chunk that names an option, and the gate applies its threshold to them."""
    from raftkit.retrieval.index import load_index

    run, _, idx = trained
    head = json.loads((run / V.HEAD_FILE).read_text())
    opts = head["options"]
    assert opts["features"][-1] == "option" and "threshold" in opts and "both" in opts
    assert opts["calibration"]["questions"] == 2 * len(TOWNS)
    check = gate.build("off", str(run), "verifier", str(run), load_index("towns", idx))
    q = "Who is the mayor of Arlen?"
    text = "The mayor of Arlen is Mira Voss."
    named, unnamed = ["Mira Voss", "Oskar Lind"], ["Hana Ruiz", "Oskar Lind"]
    [[p_named]], [[p_unnamed]] = (
        check.verifier.score([q], [[text]], [[0.5]], [o]) for o in (named, unnamed)
    )
    assert p_named > p_unnamed
    [[p_open]] = check.verifier.score([q], [[text]], [[0.5]])  # no options: the open head
    assert p_open == pytest.approx(
        V.predict(head, check.verifier.featurize([(q, text, 0.5)], head["features"]))[0]
    )
    assert check.verifier.head_for(named) == opts
    assert check.verifier.head_for(None) is check.verifier.head


class Echo:
    """A generator that answers every conversation it is asked, and counts them."""

    def __init__(self):
        self.asked = 0

    def chat(self, conversations, desc=""):
        self.asked += len(conversations)
        return ["<ANSWER>: something" for _ in conversations]


def test_ask_refuses_through_the_verifier_without_generating(trained):
    from raftkit.retrieval.index import load_index
    from raftkit.retrieval.rag import answer_questions

    run, _, idx = trained
    index = load_index("towns", idx)
    check = gate.build("off", str(run), "auto", "no-run", index)
    assert check.kind == "verifier" and check.describe().startswith("verifier <")
    gen = Echo()
    asked = ["Who is the mayor of Harrow?", "Who is the mayor of Zanzibar Quay?"]
    answers = answer_questions(index, gen, asked, K, check)
    assert gen.asked == 1  # the absent town's question never reached the generator
    assert answers[0].answer == "something"
    assert answers[1].sources == [] and "evidence verifier" in answers[1].reply


def test_rerank_puts_the_verifiers_best_chunk_first(trained):
    from raftkit.retrieval.index import load_index

    run, _, idx = trained
    index = load_index("towns", idx)
    check = gate.build("off", str(run), "verifier", "no-run", index, rerank=True)
    hits = index.search(["Which river flows through Ilford?"], K)[0]
    _, evidence = check.judge(["Which river flows through Ilford?"], [[h.chunk.text for h in hits]],
                              [[h.score for h in hits]])  # fmt: skip
    first = hits[check.order(evidence[0], K)[0]]
    assert first.chunk.doc_id == "ilford"


def test_a_run_carries_its_verifier(tmp_path, trained):
    run, _, _ = trained
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "run.json").write_text(json.dumps({"verifier": str(run)}))
    assert gate.carried_verifier(str(sft)) == str(run)
    assert gate.carried_verifier(str(tmp_path / "nothing")) is None


def test_bad_verifier_input_is_one_clear_error(tmp_path, trained, capsys):
    from raftkit.retrieval.index import load_index

    run, build, idx = trained
    index = load_index("towns", idx)
    with pytest.raises(RaftkitError, match="is not a verifier run"):
        gate.build("off", str(build), "verifier", "x", index)
    with pytest.raises(RaftkitError, match="needs a verifier run"):
        gate.build("off", "", "both", "x", index)
    head = json.loads((run / V.HEAD_FILE).read_text())
    other = tmp_path / "other-ver"
    other.mkdir()
    (other / V.HEAD_FILE).write_text(json.dumps({**head, "embedder": "some-other-encoder"}))
    with pytest.raises(RaftkitError, match="trained with embedder some-other-encoder"):
        gate.build("off", str(other), "verifier", "x", index)
    # a build that is not a build-dataset folder: one error line, exit 2
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "q", "oracle_id": "a#0", "doc_id": "a"}) + "\n")
    code = main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={rows}",
                 "--set", f"output_dir={tmp_path / 'v2'}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "error: data.path" in err and "build-dataset folder" in err
    assert "Traceback" not in err


def _shown(trained, monkeypatch, capsys, k: int, *sets: str) -> list[dict]:
    """The chunks `raftkit ask --json -k K` puts in the prompt (its `retrieved`, in prompt order)
    for Ilford's river question, with the towns verifier, the score gate off and `sets`."""
    import raftkit.generate

    run, _, idx = trained
    monkeypatch.setattr(raftkit.generate, "make_generator", lambda *a: Echo())
    argv = ["ask", "towns", "Which river flows through Ilford?", "--indexes-dir", str(idx),
            "-k", str(k), "--json", "--set", f"retrieval.verifier={run}",
            "--set", "retrieval.gate=score", "--set", "retrieval.min_score=off"]  # fmt: skip
    for s in sets:
        argv += ["--set", s]
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)["retrieved"]


def test_ask_set_retrieval_rerank_shows_the_chunks_in_the_verifiers_order(
    trained, monkeypatch, capsys
):
    """`raftkit ask --set retrieval.rerank=true`: the prompt's chunks follow the verifier's scores
    instead of retrieval's ranks; the score gate, off here, refuses nothing."""
    plain = _shown(trained, monkeypatch, capsys, K)
    reranked = _shown(trained, monkeypatch, capsys, K, "retrieval.rerank=true")
    assert [h["rank"] for h in plain] == list(range(1, K + 1))  # as retrieved
    assert plain[0]["doc_id"] != "ilford"  # the hashed words rank Ilford's page below others
    assert reranked[0]["doc_id"] == "ilford"
    assert sorted(h["rank"] for h in reranked) == list(range(1, K + 1))  # the same chunks


def test_the_verifier_judges_as_many_chunks_as_it_was_calibrated_on(trained, monkeypatch, capsys):
    """`ask -k 1` with a verifier calibrated on 12 chunks (candidates: auto): it judges 12 and
    the prompt shows its best one, Ilford's page, which retrieval ranks below another; with
    `candidates=0` the prompt shows retrieval's first chunk, judged alone. At -k 2 the prompt
    holds the verifier's best two: in retrieval's order, or in its own with rerank."""
    from raftkit.retrieval.index import load_index

    run, _, idx = trained
    alone = _shown(trained, monkeypatch, capsys, 1, "retrieval.candidates=0")
    deep = _shown(trained, monkeypatch, capsys, 1)
    assert [(h["rank"], h["doc_id"] != "ilford") for h in alone] == [(1, True)]
    assert len(deep) == 1 and deep[0]["doc_id"] == "ilford" and deep[0]["rank"] > 1
    two = _shown(trained, monkeypatch, capsys, 2)
    ranked = _shown(trained, monkeypatch, capsys, 2, "retrieval.rerank=true")
    assert sorted(h["rank"] for h in two) == sorted(h["rank"] for h in ranked)
    assert [h["rank"] for h in two] == sorted(h["rank"] for h in two)
    assert ranked[0]["doc_id"] == "ilford" and "ilford" in [h["doc_id"] for h in two]
    index = load_index("towns", idx)
    check = gate.build("off", str(run), "verifier", "x", index, rerank=True)
    assert check.candidates == K and check.depth(1) == K
    assert f"judging {K} chunks, reranked" in check.describe()
    assert gate.Gate(candidates=K).depth(1) == 1  # no verifier: the chunks shown
    head = json.loads((run / V.HEAD_FILE).read_text())
    head.pop("top_k")  # a verifier that does not say: the chunks shown
    (run / V.HEAD_FILE).write_text(json.dumps(head))
    assert gate.build("off", str(run), "verifier", "x", index).depth(3) == 3


class Plain:
    """A compare generator that answers every question with one word."""

    def __init__(self, cfg):
        pass

    def answer(self, conversations, choices=None, after_reply=False, desc="", **kw):
        from raftkit.generate import Answer

        return [Answer("<ANSWER>: something", None) for _ in conversations]


def test_compare_judges_the_candidates_and_shows_the_verifiers_best(trained, tmp_path):
    """A compare RAG system with top_k 1 and a verifier calibrated on 12 chunks: per question it
    judges 12 and the prompt (per_question.csv's `retrieved`) holds the best one; the same system
    with candidates 0 shows retrieval's first chunk. The question's own page comes in for more
    questions when the verifier judges 12."""
    import csv

    from raftkit import config
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare

    run, _, idx = trained
    _, qa = _corpus(tmp_path)
    rag = {"model": "stub", "mode": "rag", "index": "towns", "top_k": 1, "verifier": str(run),
           "gate": "score", "min_score": "off", "rerank": True}  # fmt: skip
    cfg = config.load(
        CompareConfig,
        data={
            "systems": [{"name": "first", **rag, "candidates": 0}, {"name": "deep", **rag}],
            "questions": {"path": str(qa)},
            "indexes_dir": str(idx),
            "generation": {"batch_size": 4},
            "scoring": {"ragas": False, "mc": "generate"},
            "bootstrap": {"samples": 50},
        },
    )
    compare(cfg, tmp_path / "out", generator_factory=Plain)
    rows = list(csv.DictReader(open(tmp_path / "out" / "per_question.csv")))
    own = {r["question"]: json.loads(line)["doc_ids"][0] for line in open(qa)
           for r in [json.loads(line)]}  # fmt: skip
    shown = {(r["system"], r["question"]): r["retrieved"].split() for r in rows}
    assert {len(v) for v in shown.values()} == {1}
    hit = {
        s: sum(shown[(s, q)][0].split("#")[0] == d for q, d in own.items())
        for s in ("first", "deep")
    }
    assert hit["deep"] > hit["first"]


def test_soft_option_matching_reads_an_inflected_answer(built_index):
    """`option` counts whole words, so "Voss's" does not name "Mira Voss"; late interaction with
    the encoder's token vectors does, and a page that names another person stays below it."""
    tokens = V.TokenVectors(built_index.embedder)
    options = ["Mira Voss", "Oskar Lind"]
    named, other = (
        "Mira Voss's office confirmed the vote.",
        "Hana Ruiz's office confirmed the vote.",
    )
    assert V.option_score(options, named) == 0.5
    soft_named, soft_other = (V.soft_option(options, t, tokens) for t in (named, other))
    assert soft_named[0] > soft_other[0] + 0.1 and soft_named[1] > soft_other[1]
    assert V.soft_option([], named, tokens) == V.soft_option([" "], named, tokens) == (0.0, 0.0)
    pairs = [("Who?", named, 0.5), ("Who?", other, 0.5), ("Who?", named, 0.5)]
    cols = V.featurize(pairs, list(V.SOFT), {}, tokens, [options, options, None])
    assert cols[:2] == pytest.approx(np.array([soft_named, soft_other]), abs=1e-3)
    assert cols[2].tolist() == [0.0, 0.0]  # a question without options


def test_auto_tries_the_options_head_with_soft_matching(trained, monkeypatch, capsys):
    """features: auto fits the options head with and without the soft option features, and a
    head that reads them scores through the run as the stage computed them."""
    from raftkit.retrieval.index import load_index

    _, build, idx = trained
    # the hashed-word embedder has no token vectors: word shares stand in for both
    monkeypatch.setattr(V, "maxsim", lambda q, t, tokens: np.zeros((len(q), 2)))
    monkeypatch.setattr(
        V,
        "soft_matches",
        lambda texts, options, tokens: np.array(
            [
                [V.option_score(o or [], t), V.option_score(o or [], t) ** 2]
                for t, o in zip(texts, options)
            ]
        ).reshape(-1, 2),
    )
    run = idx.parent / "auto"
    capsys.readouterr()
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}", "--set", f"verifier.top_k={K}",
                 "--set", "verifier.features=auto"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "features 'all+option' out-of-fold" in err and "features 'all+option+soft'" in err
    head = json.loads((run / V.HEAD_FILE).read_text())
    assert not {"option", *V.SOFT} & set(head["features"])  # the open head never reads options
    opts = head["options"]
    check = gate.build("off", str(run), "verifier", str(run), load_index("towns", idx))
    q, text, named = "Who is the mayor of Arlen?", "The mayor of Arlen is Mira Voss.", ["Mira Voss"]
    [[p]] = check.verifier.score([q], [[text]], [[0.5]], [named])
    x = check.verifier.featurize([(q, text, 0.5)], opts["features"], [named])
    assert p == pytest.approx(V.predict(opts, x)[0])


def test_options_false_trains_no_options_head(trained, capsys):
    """verifier.options: false fits the open head only: questions asked with answer options are
    judged by it as any other question (and run.json says no options head)."""
    from raftkit.retrieval.index import load_index

    _, build, idx = trained
    plain = build.parent / "ver-plain"
    capsys.readouterr()
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={plain}", "--set", f"verifier.top_k={K}",
                 "--set", "verifier.options=false"]) == 0  # fmt: skip
    head = json.loads((plain / V.HEAD_FILE).read_text())
    assert "options" not in head
    assert json.loads((plain / "run.json").read_text())["options"] is None
    assert "answer options" not in capsys.readouterr().out
    check = gate.build("off", str(plain), "verifier", str(plain), load_index("towns", idx))
    q, text = "Who is the mayor of Arlen?", "The mayor of Arlen is Mira Voss."
    assert check.verifier.head_for(["Mira Voss", "Oskar Lind"]) is check.verifier.head
    [[named]] = check.verifier.score([q], [[text]], [[0.5]], [["Mira Voss", "Oskar Lind"]])
    [[unnamed]] = check.verifier.score([q], [[text]], [[0.5]], [["Hana Ruiz", "Oskar Lind"]])
    [[open_]] = check.verifier.score([q], [[text]], [[0.5]])
    assert named == unnamed == open_  # the options play no part


def test_a_span_question_build_warns_that_it_calibrates_on_clozes(tmp_path, hash_embedder, capsys):
    """Span questions copy their sentence's words: a verifier calibrated on them says so."""
    corpus, _ = _corpus(tmp_path)
    idx, build = tmp_path / "indexes", tmp_path / "spans"
    assert main(["build-dataset", str(corpus), "--out", str(build),
                 "--config", "recipes/raft_build_abstain.yaml",
                 "--set", "questions.source=spans", "--set", f"retrieval.indexes_dir={idx}",
                 "--set", "index_name=towns", "--set", "assembly.num_distractors=2",
                 "--set", "assembly.eval_fraction=0"]) == 0  # fmt: skip
    capsys.readouterr()
    run = tmp_path / "ver"
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}", "--set", f"verifier.top_k={K}"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "warning:" in err and "span questions" in err and "calibrated on them" in err


# ------------------------------------------------------------------ the cross-encoder feature
@pytest.fixture(scope="session")
def tiny_cross(tmp_path_factory):
    """A 1-layer BERT cross-encoder (random weights, one-logit head, no dropout) with MiniLM's
    tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from raftkit.models import resolve_embedder

    out = tmp_path_factory.mktemp("tiny-cross")
    tok = AutoTokenizer.from_pretrained(resolve_embedder("all-minilm-l6-v2"))
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def float32_runtime():
    from raftkit.config import RuntimeConfig
    from raftkit.models import runtime

    return runtime(RuntimeConfig(dtype="float32"))


class TownReader:
    """Stands in for a trained cross-encoder: reads whether the chunk names the question's town."""

    def __init__(self, path, runtime, new_head=False):
        self.path = path

    def __call__(self, pairs, desc=""):
        return np.array([float(q.split()[-1].rstrip("?") in t) for q, t in pairs])

    def save(self, folder):
        folder.mkdir()
        (folder / "config.json").write_text("{}")


def test_the_stage_chooses_a_cross_encoder_that_reads_and_scores_with_the_runs_copy(
    trained, tiny_cross, monkeypatch, capsys
):
    """A named cross-encoder's score is the feature `cross`: a reader that sees the town lifts the
    out-of-fold AUC, the run keeps the model and scores with it, and `auto` tries every set with
    and without it."""
    from raftkit.retrieval import cross
    from raftkit.retrieval.index import load_index

    monkeypatch.setattr(cross, "CrossScorer", TownReader)
    _, build, idx = trained
    run = build.parent / "ver-cross"
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}", "--set", f"verifier.top_k={K}",
                 "--set", "verifier.features=[cosine, cross]", "--set", "verifier.options=false",
                 "--set", f"verifier.cross_encoder={tiny_cross}"]) == 0  # fmt: skip
    head = json.loads((run / V.HEAD_FILE).read_text())
    assert head["features"] == ["cosine", "cross"]
    assert head["cross_encoder"] == {"name": str(tiny_cross), "epochs": 0}
    assert (run / "cross-encoder" / "config.json").is_file()
    cal = head["calibration"]
    assert cal["verifier"]["auc"] >= 0.95 and cal["verifier"]["auc"] > cal["cosine"]["auc"] + 0.1
    assert abs(head["weights"][1]) > abs(head["weights"][0])  # the reading carries the head
    check = gate.build("off", str(run), "verifier", "x", load_index("towns", idx))
    assert check.verifier.cross.path == str(run / "cross-encoder")
    [[own, other]] = check.verifier.score(
        ["Who is the mayor of Arlen?"],
        [["Arlen has a mayor.", "Bexley has a mayor."]],
        [[0.5, 0.5]],
    )
    assert own > 0.5 > other
    # auto tries each candidate set with and without it (late interaction needs token vectors,
    # which the hashed-word embedder has none of: zeros stand in)
    monkeypatch.setattr(V, "maxsim", lambda q, t, tokens: np.zeros((len(q), 2)))
    capsys.readouterr()
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}-auto", "--set", f"verifier.top_k={K}",
                 "--set", "verifier.features=auto", "--set", "verifier.options=false",
                 "--set", f"verifier.cross_encoder={tiny_cross}"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "features 'lexical' out-of-fold" in err and "features 'lexical+cross'" in err


def test_a_cross_encoder_fine_tuned_per_fold_is_saved_and_reloaded(
    trained, tiny_cross, monkeypatch
):
    """cross_encoder_epochs fine-tunes a real model once per fold and once on all; the run keeps
    the last, and scoring through the run gives what the stage's last model gave."""
    from raftkit.retrieval import cross
    from raftkit.retrieval.index import load_index

    pair = [("Who is the mayor of Arlen?", "The mayor of Arlen is Mira Voss.")]
    before, save = {}, cross.CrossScorer.save

    def saving(scorer, folder):
        before["score"] = scorer(pair)[0]
        save(scorer, folder)

    monkeypatch.setattr(cross.CrossScorer, "save", saving)
    _, build, idx = trained
    run = build.parent / "ver-tuned"
    assert main(["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
                 "--set", f"output_dir={run}", "--set", f"verifier.top_k={K}",
                 "--set", "verifier.features=[cosine, coverage, cross]",
                 "--set", f"verifier.cross_encoder={tiny_cross}",
                 "--set", "verifier.cross_encoder_epochs=1"]) == 0  # fmt: skip
    head = json.loads((run / V.HEAD_FILE).read_text())
    assert head["cross_encoder"]["epochs"] == 1 and "cross" in head["options"]["features"]
    index = load_index("towns", idx)
    start = cross.CrossScorer(str(tiny_cross), index.runtime)
    assert before["score"] != pytest.approx(start(pair)[0])  # it trained
    check = gate.build("off", str(run), "verifier", "x", index)
    assert check.verifier.cross(pair)[0] == pytest.approx(before["score"], abs=1e-6)
    # a copy of the run without its model is refused when loaded, not midway through scoring
    (run / "cross-encoder" / "config.json").unlink()
    with pytest.raises(RaftkitError, match="reads a cross-encoder but"):
        gate.build("off", str(run), "verifier", "x", index)


def test_fine_tuning_learns_what_separates_the_pairs(tiny_cross, monkeypatch):
    from raftkit.train import cross_encoder

    monkeypatch.setattr(cross_encoder, "LR", 3e-3)
    pairs = [(f"question {n}", ("yes " if n % 2 else "no ") + "text") for n in range(32)]
    labels = [float(n % 2) for n in range(32)]
    scorer = cross_encoder.fine_tune(str(tiny_cross), pairs, labels, 8, 0, float32_runtime(), "t")
    scores = scorer(pairs)
    assert scores[1::2].min() > scores[0::2].max()


def test_bad_cross_encoder_input_is_one_clear_error(trained, capsys):
    """An encoder without a trained head used as it is, `cross` without a model, a name that is no
    model: exit 2 before any feature is computed; a model no feature reads is said."""
    _, build, _ = trained
    base = ["train", "--config", "recipes/verifier_tiny.yaml", "--set", f"data.path={build}",
            "--set", f"output_dir={build.parent / 'bad'}"]  # fmt: skip
    cross = ["--set", "verifier.features=[cosine, cross]"]
    for sets, said in (
        (["--set", "verifier.cross_encoder=all-minilm-l6-v2", *cross], "no trained classification"),
        (cross, "`cross` needs cross_encoder"),
        (["--set", "verifier.cross_encoder_epochs=1"], "cross_encoder, which is not set"),
        (["--set", "verifier.cross_encoder=no/such-model-here", *cross], "verifier.cross_encoder"),
    ):
        capsys.readouterr()
        assert main([*base, *sets]) == 2, sets
        err = capsys.readouterr().err
        assert "error:" in err and said in err and "Traceback" not in err, err
        assert not (build.parent / "bad").exists()
    minilm = ["--set", "verifier.cross_encoder=all-minilm-l6-v2", "--set", "verifier.options=false"]
    assert main([*base, *minilm]) == 0
    assert "verifier.cross_encoder is not used" in capsys.readouterr().err
    assert not (build.parent / "bad" / "cross-encoder").exists()
