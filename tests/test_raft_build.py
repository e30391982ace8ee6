"""`build_dataset` / `raftkit build-dataset` end to end with a stub generator: outputs, resume,
errors."""

import json
import re

import pytest

from raftkit import config, files, prompts
from raftkit.cli import main
from raftkit.errors import ConfigError, RaftkitError
from raftkit.prompts import extract_quotes, quote_in
from raftkit.raft import answers as answers_mod
from raftkit.raft import questions as questions_mod
from raftkit.raft.build import build_dataset
from raftkit.raft.config import RaftBuildConfig

PLACES = [
    "Arnholt",
    "Brisk",
    "Corran",
    "Dunmere",
    "Elsby",
    "Farrow",
    "Galt",
    "Hesk",
    "Ilvar",
    "Jorund",
    "Kestle",
    "Lorne",
]


class StubGenerator:
    """Writes questions from a chunk's sentences and answers that quote the text (every 3rd
    misquotes).

    `fail_after` raises KeyboardInterrupt once that many chunks have been asked for questions, as a
    Ctrl-C in the middle of a batch would.
    """

    def __init__(self, fail_after=None):
        self.fail_after, self.chunks_seen, self.calls = fail_after, 0, []

    def chat(self, conversations, max_new_tokens=None, desc=""):
        self.calls.append((desc, len(conversations)))
        return [self._reply(c) for c in conversations]

    def _reply(self, conv):
        user = conv[-1]["content"]
        if conv[0]["content"] == questions_mod.SYSTEM:
            self.chunks_seen += 1
            if self.fail_after is not None and self.chunks_seen > self.fail_after:
                raise KeyboardInterrupt
            text = user[len("Text: ") : user.rindex("\nWrite")]
            qs = [
                f"{i + 1}. What does the text say about {' '.join(s.split()[:5])}?"
                for i, s in enumerate(answers_mod.sentences(text)[:3])
            ]
            return "Here are some questions:\n\n" + "\n".join(
                qs + qs[:1]
            )  # a preamble and a repeat
        text, question = user[len("Text: ") :].split("\nQuestion: ")
        sent, _ = answers_mod.best_sentence(text, question)
        if sum(map(ord, question)) % 3 == 0:
            sent = sent.replace(" is ", " was ", 1).lower()  # a misquote the repair must fix
        return (
            f"The text says ##begin_quote##{sent}##end_quote## so that is it.\n"
            f"<ANSWER>: {sent.split()[-1]}"
        )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """12 fictional town pages, 4 paragraphs each; with 64-token chunks about 48 chunks."""
    root = tmp_path_factory.mktemp("towns")
    for n, town in enumerate(PLACES):
        paras = [
            f"{town} is a harbour town of {1000 + 37 * n} people. Its mayor is {PLACES[n - 1]} "
            f"Vale. The town hall was built in {1800 + n}.",
            f"The {town} ferry leaves at {6 + n % 5}:15 every morning. It carries {20 + n} cars. "
            f"Tickets cost {3 + n} crowns.",
            f"The {town} library holds {5000 + 100 * n} books. It is open on "
            f"{['Mondays', 'Fridays'][n % 2]}. The librarian is called {PLACES[(n + 3) % 12]} "
            "Moss.",
            f"Every spring {town} holds a fair with {10 + n} stalls. The fair lasts {2 + n % 3} "
            f"days. Its prize is a silver {['fish', 'boat', 'bell'][n % 3]}.",
        ]
        (root / f"{town.lower()}.md").write_text(f"# {town}\n\n" + "\n\n".join(paras) + "\n")
    return root


def make_cfg(tmp_path, *overrides):
    return config.load(
        RaftBuildConfig,
        overrides=[
            "retrieval.chunking.size=64",
            "retrieval.chunking.overlap=8",
            f"retrieval.indexes_dir={tmp_path}/idx",
            "checkpoint_every=4",
            "assembly.eval_fraction=0.25",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def index(corpus, tmp_path_factory):
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.retrieval.indexing import build_index

    cfg = make_cfg(tmp_path_factory.mktemp("cfg"))
    return build_index(
        corpus, "towns", RaftkitConfig(retrieval=cfg.retrieval, generation=cfg.generation)
    )


@pytest.fixture(scope="module")
def full(corpus, index, tmp_path_factory):
    """One uninterrupted build with the stub generator, shared by the read-only checks below."""
    tmp = tmp_path_factory.mktemp("full")
    gen = StubGenerator()
    dd = build_dataset(make_cfg(tmp), corpus, tmp / "out", generator=gen, index=index).dataset
    return dd, tmp / "out", gen


def test_build_writes_every_output_with_the_contract_columns(full, index):
    dd, out, _ = full
    for name in ("config.yaml", "manifest.json", "dataset/dataset_dict.json"):
        assert (out / name).is_file()
    for form in ("chat", "completion", "preference", "dsf"):
        for split in ("train", "eval"):
            assert len(files.read_jsonl(out / f"{form}_{split}.jsonl")) == len(dd[split])
    assert set(dd["train"].column_names) >= {
        "id",
        "question",
        "answer",
        "cot_answer",
        "doc_id",
        "oracle_id",
        "context_ids",
        "context",
        "oracle_present",
        "messages",
        "prompt",
        "completion",
        "chosen",
        "rejected",
    }
    row = dd["train"][0]
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["prompt"] == row["messages"][:2] and row["completion"] == row["messages"][2:]
    assert row["chosen"] == row["completion"] and row["rejected"][0]["role"] == "assistant"
    assert row["rejected"] != row["chosen"]
    titles = [{c.id: c.title for c in index.chunks}[i] for i in row["context_ids"]]
    shown = prompts.rag_messages(row["question"], row["context"], titles)
    assert row["messages"][1]["content"] == shown[1]["content"]
    dsf = files.read_jsonl(out / "dsf_train.jsonl")[0]
    assert dsf["prompt"][-1]["content"] == f"Question: {dd['train'][0]['question']}"
    assert dsf["completion"][0]["content"].startswith("<ANSWER>: ")


def test_build_meets_the_raft_guarantees(full, index):
    dd, out, _ = full
    rows = list(dd["train"]) + list(dd["eval"])
    assert len(rows) >= 100
    assert abs(sum(r["oracle_present"] for r in rows) / len(rows) - 0.8) <= 0.1
    doc_of = {c.id: c.doc_id for c in index.chunks}
    text = {c.id: c.text for c in index.chunks}
    for r in rows:
        assert len(r["distractor_ids"]) == 4 and len(r["context_ids"]) == 5
        assert all(
            doc_of[d] != r["doc_id"] for d in r["distractor_ids"]
        )  # hard: never the oracle's document
        if r["oracle_present"]:
            assert all(quote_in(q, [text[r["oracle_id"]]]) for q in extract_quotes(r["cot_answer"]))
    assert not {r["doc_id"] for r in dd["train"]} & {r["doc_id"] for r in dd["eval"]}
    manifest = json.loads((out / "manifest.json").read_text())
    s = manifest["summary"]
    assert s["examples"] == {"train": len(dd["train"]), "eval": len(dd["eval"])}
    assert s["chunks"] == len(index.chunks) and s["questions"] == len(rows) + round(
        s["dropped_share"] * s["questions"]
    )
    assert (
        0 < s["quote_repaired_share"] < 0.6 and s["quote_verified_share"] > 0.4
    )  # the stub misquotes 1 in 3
    # The stub asks one question per sentence (at most 3) and repeats the first; parsing drops the
    # repeat.
    assert s["questions_parsed"] == sum(
        min(3, len(answers_mod.sentences(c.text))) for c in index.chunks
    )
    assert s["questions"] == s["questions_parsed"] - s["questions_duplicate"]
    assert manifest["models"]["generator"] == "smollm2-135m-instruct"
    assert manifest["splits"]["eval_documents"] == sorted({r["doc_id"] for r in dd["eval"]})


def test_generation_is_batched_per_checkpoint_batch(full, index):
    _, _, gen = full
    q_calls = [n for desc, n in gen.calls if desc == "questions"]
    assert q_calls[:-1] == [4] * (len(q_calls) - 1) and sum(q_calls) == len(index.chunks)


def test_interrupted_build_resumes_to_the_same_examples(full, corpus, index, tmp_path):
    dd, out_full, _ = full
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(
            make_cfg(tmp_path), corpus, out, generator=StubGenerator(fail_after=10), index=index
        )
    assert sorted(p.name for p in (out / ".work").iterdir()) == [
        "batch-00000.json",
        "batch-00001.json",
        "plan.json",
    ]
    assert not (out / "manifest.json").exists()
    second = StubGenerator()
    resumed = build_dataset(make_cfg(tmp_path), corpus, out, generator=second, index=index).dataset
    assert (
        sum(n for desc, n in second.calls if desc == "questions") == len(index.chunks) - 8
    )  # 2 batches skipped
    for split in ("train", "eval"):
        assert resumed[split].to_list() == dd[split].to_list()
        for form in ("chat", "completion", "preference", "dsf"):
            assert (out / f"{form}_{split}.jsonl").read_bytes() == (
                out_full / f"{form}_{split}.jsonl"
            ).read_bytes()


def test_existing_output_needs_overwrite_and_other_settings_do_not_resume(
    full, corpus, index, tmp_path
):
    _, out, _ = full
    with pytest.raises(
        RaftkitError, match=f"^{re.escape(str(out))} already holds a dataset; use --overwrite"
    ):
        build_dataset(make_cfg(tmp_path), corpus, out, generator=StubGenerator(), index=index)
    partial = tmp_path / "partial"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(
            make_cfg(tmp_path), corpus, partial, generator=StubGenerator(fail_after=5), index=index
        )
    with pytest.raises(
        RaftkitError, match="holds an unfinished build with other settings or inputs"
    ):
        build_dataset(
            make_cfg(tmp_path, "assembly.oracle_p=0.5"),
            corpus,
            partial,
            generator=StubGenerator(),
            index=index,
        )
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(RaftkitError, match="exists and is not a raftkit dataset folder"):
        build_dataset(
            make_cfg(tmp_path),
            corpus,
            stranger,
            generator=StubGenerator(),
            index=index,
            overwrite=True,
        )
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]


def test_overwrite_rebuilds_with_new_settings(full, corpus, index, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(full[1], out)
    dd = build_dataset(
        make_cfg(tmp_path, "assembly.absent_target=memorize", "assembly.distractors=random"),
        corpus,
        out,
        generator=StubGenerator(),
        index=index,
        overwrite=True,
    ).dataset
    assert config.read_yaml(out / "config.yaml")["assembly"]["absent_target"] == "memorize"
    assert all(r["cot_answer"].count("##begin_quote##") for r in dd["train"])


def test_config_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as e:
        config.load(
            RaftBuildConfig,
            overrides=[
                "assembly.oracle_p=1.5",
                "assembly.num_distractors=-1",
                "questions.per_chunk=0",
                "checkpoint_every=0",
                "assembly.distractors=nearest",
            ],
        )
    assert e.value.problems == [
        "questions.per_chunk (0) must be at least 1",
        "assembly.num_distractors (-1) must not be negative",
        "assembly.oracle_p (1.5) must be in [0, 1]",
        "assembly.distractors: 'nearest' is not one of 'random', 'hard'",
        "checkpoint_every (0) must be at least 1",
    ]


@pytest.mark.parametrize("recipe", ["recipes/raft_build.yaml", "recipes/raft_build_tiny.yaml"])
def test_recipes_load_and_name_their_command(recipe):
    from pathlib import Path

    path = Path(__file__).parent.parent / recipe
    cfg = config.load(RaftBuildConfig, path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# raftkit build-dataset ") and f"--config {recipe}" in first
    assert cfg.assembly.oracle_p == 0.8


# ----------------------------------------------------------------------------- --qa through the CLI
QA = [
    {
        "id": "v1",
        "question": "How many seismometers monitor Mount Skarn?",
        "answer": "14",
        "choices": ["12", "14", "16", "18"],
        "doc_ids": ["volcanoes.md"],
    },
    {
        "id": "b1",
        "question": "What did Ilse Marten name her sourdough starter?",
        "answer": "Gustav",
        "doc_ids": ["bakery.txt"],
    },
    {
        "id": "l1",
        "question": "Who founded the Orra City Library?",
        "answer": "Piet Haldor",
        "doc_ids": ["lib-2"],
    },
    {
        "id": "l2",
        "question": "How many books may one card borrow?",
        "answer": "12",
        "doc_ids": ["lib-1"],
    },
    {
        "id": "u1",
        "question": "What colour is the harbour lighthouse?",
        "answer": None,
        "doc_ids": [],
    },
    {"id": "m1", "question": "Where is the mint?", "answer": "Orra", "doc_ids": ["mint.md"]},
    {
        "id": "w1",
        "question": "When did Mount Skarn last erupt?",
        "answer": "2001",
        "doc_ids": ["volcanoes.md"],
    },
]


def test_cli_with_qa_writes_deterministic_cots_without_a_model(
    built_index, docs_dir, tmp_path, capsys
):
    qa = tmp_path / "qa.jsonl"
    files.write_jsonl(qa, QA)
    out = tmp_path / "out"
    args = [
        "build-dataset",
        str(docs_dir),
        "--qa",
        str(qa),
        "--out",
        str(out),
        "--set",
        f"retrieval.indexes_dir={built_index.path.parent}",
        "--set",
        "index_name=assets",
        "--set",
        "assembly.num_distractors=2",
        "--set",
        "assembly.eval_fraction=0.2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert re.search(r"wrote .*out: \d+ train \+ \d+ eval examples", printed)
    assert (
        "not used: 1 answer not in its documents, 1 its documents are not in DOCS, "
        "1 unanswerable (no doc_ids or null answer)"
    ) in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["index"] == {
        "name": "assets",
        "path": str(built_index.path),
        "action": "reused",
    }
    assert manifest["models"]["generator"] is None  # given answers need no model
    rows = files.read_jsonl(out / "preference_train.jsonl") + files.read_jsonl(
        out / "preference_eval.jsonl"
    )
    assert len(rows) == 4
    from datasets import load_from_disk

    dd = load_from_disk(str(out / "dataset"))
    by_id = {r["id"]: r for s in ("train", "eval") for r in dd[s]}
    assert sorted(by_id) == ["b1", "l1", "l2", "v1"]
    v1 = by_id["v1"]
    assert v1["oracle_id"] == "volcanoes.md#0"
    assert (
        extract_quotes(v1["cot_answer"])
        == ["The Skarn Observatory monitors it with 14 seismometers."]
        or not v1["oracle_present"]
    )
    assert v1["rejected"][0]["content"].rsplit("<ANSWER>: ", 1)[1] in (
        "12",
        "16",
        "18",
    )  # another choice
    assert (v1["choices"], v1["answer_index"]) == (
        ["12", "14", "16", "18"],
        1,
    )  # for multiple-choice scoring
    assert (by_id["b1"]["choices"], by_id["b1"]["answer_index"]) == ([], None)
    # A rerun without --overwrite refuses; nothing changes.
    before = (out / "manifest.json").read_bytes()
    assert main(args) == 2
    assert "already holds a dataset; use --overwrite" in capsys.readouterr().err
    assert (out / "manifest.json").read_bytes() == before


def test_cli_bad_qa_file_is_a_one_line_error_and_writes_nothing(docs_dir, tmp_path, capsys):
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "ok?", "answer": "x", "doc_ids": ["a"]}\n{not json\n')
    out = tmp_path / "out"
    assert main(["build-dataset", str(docs_dir), "--qa", str(qa), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {qa}: line 2 is not valid JSON\n"
    assert not out.exists()
    assert (
        main(["build-dataset", str(docs_dir), "--out", str(out), "--set", "assembly.oracle_p=2"])
        == 2
    )
    assert capsys.readouterr().err == "error: config: assembly.oracle_p (2.0) must be in [0, 1]\n"
    assert not out.exists()


def test_readme_qa_command_on_the_demo_prints_what_the_readme_shows(tmp_path, capsys):
    """The first build-dataset command of docs/build-dataset.md, run as written (output and index
    redirected to tmp), prints what the page shows."""
    import shlex
    from pathlib import Path

    root = Path(__file__).parent.parent
    section = (root / "docs" / "build-dataset.md").read_text()
    command = next(
        ln for ln in section.splitlines() if ln.startswith("raftkit build-dataset") and "--qa" in ln
    )
    argv = shlex.split(command)[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    argv = [str(root / a) if a.startswith("corpora/") else a for a in argv]
    assert main(argv + ["--set", f"retrieval.indexes_dir={tmp_path / 'idx'}"]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = (
        section[section.index("The first command prints") :].split("```")[1].strip().splitlines()
    )
    assert re.sub(r" in [\d.]+s$", "", printed[0].split(": ", 1)[1]) == re.sub(
        r" in [\d.]+s$", "", shown[0].split(": ", 1)[1]
    )
    assert printed[1:] == shown[1:]


def test_too_small_corpus_fails_before_any_generation_and_writes_nothing(
    built_index, docs_dir, tmp_path
):
    gen = StubGenerator()
    with pytest.raises(
        RaftkitError,
        match=r"^4 distractors \(\+1 to replace a dropped oracle\) need 5 chunks "
        r"outside '\S+', the corpus has 4; lower assembly.num_distractors",
    ):
        build_dataset(
            config.load(RaftBuildConfig),
            docs_dir,
            tmp_path / "out",
            generator=gen,
            index=built_index,
        )
    assert gen.calls == [] and not (tmp_path / "out").exists()


def test_qa_lines_without_answers_are_answered_by_the_generator(built_index, docs_dir, tmp_path):
    qa = tmp_path / "qa.jsonl"
    files.write_jsonl(
        qa,
        [
            {
                "id": "g1",
                "question": "How many seismometers does the Skarn Observatory use?",
                "doc_ids": ["volcanoes.md"],
            },
            {
                "id": "g2",
                "question": "Who founded the library?",
                "answer": "Piet Haldor",
                "doc_ids": ["lib-2"],
            },
        ],
    )
    gen = StubGenerator()
    cfg = config.load(
        RaftBuildConfig, overrides=["assembly.num_distractors=2", "assembly.eval_fraction=0"]
    )
    dd = build_dataset(
        cfg, docs_dir, tmp_path / "out", qa=qa, generator=gen, index=built_index
    ).dataset
    assert gen.calls == [("answers", 1)]  # only the line without an answer reaches the model
    rows = {r["id"]: r for r in dd["train"]}
    assert rows["g1"]["oracle_id"] == "volcanoes.md#0" and rows["g1"]["answer"] == "seismometers."
    assert (
        json.loads((tmp_path / "out" / "manifest.json").read_text())["models"]["generator"]
        == "smollm2-135m-instruct"
    )
    from datasets import load_from_disk

    again = load_from_disk(str(tmp_path / "out" / "dataset"))  # an empty eval split must load too
    assert again["eval"].num_rows == 0 and again["train"].num_rows == dd["train"].num_rows
