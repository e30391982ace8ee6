"""Never lose a user's data: what a command may delete, one writer at a time, a swap that survives a
crash, no network unasked, and one `error:` line (exit 2) for each bad input found by trying.

Each test names the defect it guards (as the commit before this suite, 734c588, had it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from raftkit import outputs
from raftkit.cli import main
from raftkit.errors import RaftkitError

RECIPES = Path(__file__).parents[1] / "recipes"
TRAIN = Path(__file__).parent / "assets" / "train"


def run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()[-1] if err.strip() else ""


@pytest.fixture
def indexes(tmp_path, built_index) -> Path:
    """An indexes folder holding a copy of the assets index as 'good', plus a user file."""
    root = tmp_path / "idx"
    shutil.copytree(built_index.path, root / "good")
    (root / "notes.txt").write_text("mine")
    return root


# ---------- 1. names are plain names
@pytest.mark.parametrize("name", [".", "..", "../../x", "/tmp/somewhere", "a/b", ".hidden"])
def test_index_names_must_be_plain_names(capsys, indexes, docs_dir, name):
    code, err = run(
        capsys, "index", "build", docs_dir, "--name", name, "--indexes-dir", indexes, "--overwrite"
    )
    assert code == 2 and err.startswith(f"error: index name '{name}' must be a plain name")
    assert sorted(p.name for p in indexes.iterdir() if not p.name.startswith(".")) == [
        "good",
        "notes.txt",
    ]
    assert (indexes / "good" / "manifest.json").is_file()


# ---------- 2. --overwrite deletes only its own kind
def test_overwrite_refuses_folders_raftkit_did_not_make(
    capsys, tmp_path, docs_dir, tiny_llama, train_argv
):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "diary.txt").write_text("precious")
    cases = [
        train_argv("sft_lora_tiny.yaml", tiny_llama, notes, "--overwrite"),
        ["build-dataset", docs_dir, "--out", notes, "--overwrite"],
        [
            "compare",
            "--config",
            RECIPES / "compare_tiny.yaml",
            "--out",
            notes,
            "--overwrite",
            "--set",
            f"indexes_dir={tmp_path / 'idx'}",
        ],
    ]
    for argv in cases:
        code, err = run(capsys, *argv)
        assert code == 2 and "is not a raftkit" in err and "refusing to replace it" in err, (
            argv,
            err,
        )
    assert [p.name for p in notes.iterdir()] == ["diary.txt"] and (
        notes / "diary.txt"
    ).read_text() == "precious"


def test_index_overwrite_refuses_a_folder_that_is_not_an_index(capsys, indexes, docs_dir):
    (indexes / "photos").mkdir()
    (indexes / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    code, err = run(
        capsys,
        "index",
        "build",
        docs_dir,
        "--name",
        "photos",
        "--indexes-dir",
        indexes,
        "--overwrite",
    )
    assert code == 2 and "is not a raftkit index folder" in err
    assert (indexes / "photos" / "cat.jpg").read_bytes() == b"\xff\xd8"


# ---------- 3. the old output lives until the new one is whole
def test_interrupted_overwrite_keeps_the_old_dataset(tmp_path, docs_dir, built_index):
    from raftkit import config
    from raftkit.raft.build import build_dataset
    from raftkit.raft.config import RaftBuildConfig

    class Dies:
        def chat(self, conversations, max_new_tokens=None, desc=""):
            raise KeyboardInterrupt

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps(
            {
                "id": "v",
                "question": "How tall is Mount Skarn?",
                "answer": "3,412 metres",
                "doc_ids": ["volcanoes.md"],
            }
        )
        + "\n"
    )
    cfg = config.load(
        RaftBuildConfig, overrides=["assembly.num_distractors=2", "assembly.eval_fraction=0"]
    )
    out = tmp_path / "out"
    build_dataset(cfg, docs_dir, out, qa=qa, index=built_index)
    before = (out / "manifest.json").read_bytes()
    generated = config.load(
        RaftBuildConfig, overrides=["assembly.num_distractors=2", "questions.max_chunks=2"]
    )
    with pytest.raises(KeyboardInterrupt):
        build_dataset(generated, docs_dir, out, overwrite=True, generator=Dies(), index=built_index)
    assert (out / "manifest.json").read_bytes() == before and (out / "dataset").is_dir()


def test_interrupted_overwrite_keeps_the_old_report(
    tmp_path, built_index, stub_generator, compare_cfg
):
    from raftkit.compare.run import compare

    out = tmp_path / "out"
    compare(compare_cfg(built_index), out, generator_factory=stub_generator)
    before = (out / "results.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        compare(
            compare_cfg(built_index),
            out,
            overwrite=True,
            generator_factory=lambda g: stub_generator(g, fail_after=1),
        )
    assert (out / "results.json").read_bytes() == before and (out / "report.html").is_file()


def test_failed_overwrite_keeps_the_old_run(capsys, tmp_path, tiny_llama, train_tiny, monkeypatch):
    from raftkit.train import runfolder

    run_dir = tmp_path / "run"
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run_dir, "optim.max_steps=1") == 0
    before = (run_dir / "run.json").read_bytes()

    def crash(*a, **k):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(runfolder, "run_training", crash)
    code = train_tiny("sft_lora_tiny.yaml", tiny_llama, run_dir, "--overwrite")
    capsys.readouterr()
    assert (
        code == 1 and (run_dir / "run.json").read_bytes() == before and (run_dir / "model").is_dir()
    )


# ---------- 4. one writer at a time
def test_a_second_writer_is_refused_with_the_holders_pid(capsys, indexes, docs_dir, tmp_path):
    with outputs.lock(indexes / "good", "index 'good'"):
        code, err = run(
            capsys, "index", "update", docs_dir, "--name", "good", "--indexes-dir", indexes
        )
        assert code == 2 and err == (
            f"error: index 'good' at {indexes / 'good'} is in use by another raftkit "
            f"process (pid {os.getpid()}); wait for it to finish"
        )
        out = tmp_path / "ds"
        with outputs.lock(out, "dataset"):
            code, err = run(capsys, "build-dataset", docs_dir, "--out", out)
            assert code == 2 and f"is in use by another raftkit process (pid {os.getpid()})" in err
    code, _ = run(capsys, "index", "query", "good", "Mount Skarn", "--indexes-dir", indexes)
    assert code == 0  # readers never wait for the lock


# ---------- 5. a crash at any step of the swap
class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it in the command runs."""


@pytest.mark.parametrize("after", [1, 2, 3])
def test_a_kill_after_any_rename_of_the_swap_leaves_an_index_and_the_next_command_repairs(
    after, monkeypatch, indexes, docs_copy
):
    from raftkit.retrieval.index import load_index
    from raftkit.retrieval.indexing import update_index

    real, done = outputs._rename, []

    def rename_then_die(src, dst):
        real(src, dst)
        done.append(dst)
        if len(done) == after:
            raise Killed

    (docs_copy / "volcanoes.md").write_text(
        "# Volcanoes\nMount Skarn rises 3,498 metres since 2021."
    )
    monkeypatch.setattr(outputs, "_rename", rename_then_die)
    with pytest.raises(Killed):
        update_index(docs_copy, "good", indexes)
    monkeypatch.setattr(outputs, "_rename", real)
    text = load_index("good", indexes).search(["How tall is Mount Skarn?"], 1)[0][0].chunk.text
    assert (
        "3,498" in text
    )  # from the first rename on, the new index is complete: the swap goes forward
    leftovers = [
        p.name
        for p in indexes.iterdir()
        if p.name.startswith(".good.") and not p.name.endswith(".lock")
    ]
    assert leftovers == []  # the reader took the lock and finished the swap
    _, stats = update_index(docs_copy, "good", indexes)
    assert stats.chunks_embedded == 0  # nothing was lost: the next command sees the new index whole


def test_recover_puts_the_old_folder_back_when_no_new_one_exists(tmp_path):
    target = tmp_path / "x"
    old = tmp_path / ".x.old"
    old.mkdir()
    (old / "f").write_text("old")
    outputs.recover(target)
    assert (target / "f").read_text() == "old" and not old.exists()


# ---------- 6. nothing leaves the machine
@pytest.fixture
def no_network(monkeypatch):
    """Fail on any socket connection outside loopback."""
    real = socket.socket.connect
    tried = []

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not host.startswith(("127.", "::1", "localhost", "/")):
            tried.append(address)
            raise AssertionError(f"network connection to {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return tried


def test_compare_with_ragas_makes_no_network_connection(
    tmp_path, built_index, stub_generator, compare_cfg, no_network
):
    from raftkit.compare.run import compare

    report = compare(
        compare_cfg(built_index, scoring={"ragas": True}),
        tmp_path / "out",
        generator_factory=stub_generator,
    )
    assert report.metric("base+rag", "ragas_rouge_l") is not None and no_network == []
    assert os.environ["RAGAS_DO_NOT_TRACK"] == "true"  # set when raftkit is imported


def test_a_mistyped_local_dataset_path_is_not_sent_to_the_hub(
    capsys, tmp_path, tiny_llama, no_network, train_argv
):
    sets = ("data.path=datasets/demo-v", "data.eval_path=")
    code, err = run(capsys, *train_argv("sft_lora_tiny.yaml", tiny_llama, tmp_path / "r", *sets))
    assert code == 2 and "datasets/demo-v" in err and "hf://" in err and no_network == []


# ---------- 7. one error line, not a traceback
@pytest.mark.parametrize("k", ["0", "-3"])
def test_query_with_k_below_one(capsys, indexes, k):
    code, err = run(capsys, "index", "query", "good", "x", "-k", k, "--indexes-dir", indexes)
    assert (code, err) == (2, f"error: -k (chunks to return) must be at least 1, got {k}")


def test_indexes_dir_that_is_a_file_fails_before_any_embedding(
    capsys, tmp_path, docs_dir, monkeypatch
):
    from raftkit.retrieval import embedding

    monkeypatch.setattr(embedding.Embedder, "encode", lambda *a, **k: pytest.fail("embedded first"))
    (tmp_path / "file").write_text("not a folder")
    code, err = run(
        capsys, "index", "build", docs_dir, "--name", "x", "--indexes-dir", tmp_path / "file"
    )
    assert code == 2 and err == f"error: index 'x': {tmp_path / 'file'} is a file, not a folder"


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes anywhere: permissions cannot be tested as root"
)
def test_unwritable_indexes_dir_fails_before_any_embedding(capsys, tmp_path, docs_dir):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    code, err = run(capsys, "index", "build", docs_dir, "--name", "x", "--indexes-dir", locked)
    assert code == 2 and "cannot write to" in err


def test_dpo_on_chat_only_data_is_the_column_error(capsys, tmp_path, tiny_llama, train_argv):
    data = f"data.path={TRAIN / 'chat_only.jsonl'}"
    code, err = run(capsys, *train_argv("dpo_lora_tiny.yaml", tiny_llama, tmp_path / "r", data))
    assert code == 2 and "lacks column(s) prompt, chosen, rejected needed by stage 'dpo'" in err


def test_train_and_eval_files_with_different_columns(capsys, tmp_path, tiny_llama, train_argv):
    data = f"data.eval_path={TRAIN / 'chat_only.jsonl'}"
    code, err = run(capsys, *train_argv("sft_lora_tiny.yaml", tiny_llama, tmp_path / "r", data))
    assert code == 2 and err.endswith("missing column(s) prompt, completion that data.path has")


# ---------- 10. outputs others can read
def test_outputs_follow_the_umask(tmp_path, docs_dir):
    from raftkit import config
    from raftkit.retrieval.config import RaftkitConfig
    from raftkit.retrieval.indexing import build_index

    old = os.umask(0o022)
    try:
        index = build_index(
            docs_dir,
            "shared",
            config.load(RaftkitConfig, overrides=[f"retrieval.indexes_dir={tmp_path}"]),
        )
    finally:
        os.umask(old)
    assert oct(index.path.stat().st_mode & 0o777) == oct(0o755)
    assert {oct(p.stat().st_mode & 0o777) for p in index.path.iterdir()} == {oct(0o644)}


def test_lock_errors_are_raftkit_errors(tmp_path):
    with (
        outputs.lock(tmp_path / "x", "thing"),
        pytest.raises(RaftkitError, match="in use by another"),
    ):
        with outputs.lock(tmp_path / "x", "thing"):
            pass


def test_resume_passes_over_a_checkpoint_a_kill_interrupted(tmp_path):
    """A kill while the Trainer saved checkpoint-4 leaves it without its trainer_state.json (written
    last) or with a torn one: --resume continues from checkpoint-2 instead of failing on it, and
    the torn folder stays where it is."""
    from raftkit.train.runfolder import last_checkpoint

    run = tmp_path / "run"
    for step in (2, 4, 6):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"w")
    (run / "checkpoint-2" / "trainer_state.json").write_text('{"global_step": 2}')
    (run / "checkpoint-6" / "trainer_state.json").write_text('{"global_st')  # torn by the kill
    (run / "checkpoint-10-old").mkdir()  # not a checkpoint name
    assert last_checkpoint(run) == str(run / "checkpoint-2")
    (run / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    assert last_checkpoint(run) == str(run / "checkpoint-4")
    assert (run / "checkpoint-6").is_dir()
    assert last_checkpoint(tmp_path / "missing") is None


def test_resume_after_the_last_checkpoint_trains_no_extra_step(tiny_llama, tmp_path, train_tiny):
    """Killed after its last checkpoint (here: after model/, before run.json), a resumed run gives
    the uninterrupted weights: transformers' Trainer resumed at max_steps trains one step more."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    sets = ("optim.max_steps=2", "optim.save_steps=1", "data.eval_path=")
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, *sets) == 0
    weights = load_file(str(run / "model" / "adapter_model.safetensors"))
    (run / "run.json").unlink()
    assert train_tiny("sft_lora_tiny.yaml", tiny_llama, run, *sets, "--resume") == 0
    assert not (run / "checkpoint-3").exists()
    assert json.loads((run / "run.json").read_text())["steps"] == 2
    again = load_file(str(run / "model" / "adapter_model.safetensors"))
    assert weights.keys() == again.keys()
    assert all((weights[k] == again[k]).all() for k in weights)


def test_resume_before_the_first_complete_checkpoint_starts_over(tmp_path, capsys):
    """Killed while its first checkpoint was being written, a run of ours resumes from step 0 (one
    status line); --resume on a folder raftkit did not make is still refused."""
    from raftkit.train.run import check_run_dir, load_config

    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)  # torn: no trainer_state.json
    cfg = load_config(None, [f"output_dir={run}", "data.path=x.jsonl"])
    with pytest.raises(RaftkitError, match="no checkpoint-"):
        check_run_dir(cfg, overwrite=False, resume=True)
    outputs.mark(run, "run")
    check_run_dir(cfg, overwrite=False, resume=True)
    assert "no complete checkpoint yet; training from step 0" in capsys.readouterr().err
