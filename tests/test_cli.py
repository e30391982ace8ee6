"""The CLI: each bad input gives one line on stderr, exit code 2, no traceback, nothing lost."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from raftkit.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys, raftkit.cli as c; c.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'trl', 'datasets') if m in "
        "sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_offline_notices_of_libraries_stay_off_the_screen():
    """bitsandbytes' CPU backend asks the `kernels` package for a Hub kernel; offline, `kernels`
    logged a warning on every command that loaded a model."""
    import logging

    from raftkit.ui import quiet_libraries

    quiet_libraries()
    for name in ("kernels._internals.hf_hub", "bitsandbytes.backends.cpu.ops"):
        assert not logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_build_query_update_roundtrip(capsys, tmp_path, docs_copy):
    idx = str(tmp_path / "idx")
    code, out, err = run(
        capsys, "index", "build", str(docs_copy), "--name", "t", "--indexes-dir", idx
    )
    assert code == 0 and out.startswith("built index 't' at ") and "5 documents" in out
    assert "skipped" in err and "broken.pdf" in err  # reported, not fatal
    code, out, _ = run(
        capsys,
        "index",
        "query",
        "t",
        "How tall is Mount Skarn?",
        "-k",
        "2",
        "--json",
        "--indexes-dir",
        idx,
    )
    hits = json.loads(out)
    assert code == 0 and [h["rank"] for h in hits] == [1, 2] and hits[0]["doc_id"] == "volcanoes.md"
    assert "3,412" in hits[0]["text"]
    (docs_copy / "volcanoes.md").write_text(
        "# Volcanoes of Norland\nMount Skarn rises 3,498 metres since 2021."
    )
    code, out, _ = run(
        capsys, "index", "update", str(docs_copy), "--name", "t", "--indexes-dir", idx
    )
    assert code == 0 and "0 added, 1 changed, 0 deleted, 4 unchanged" in out
    code, out, _ = run(
        capsys, "index", "query", "t", "How tall is Mount Skarn?", "-k", "1", "--indexes-dir", idx
    )
    assert "volcanoes.md#0" in out and "3,498" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["index", "build", "{tmp}/missing", "--name", "x"],
            "error: documents folder not found: {tmp}/missing",
        ),
        (
            ["index", "build", "{tmp}/empty", "--name", "x"],
            "error: no documents (.txt .md .html .htm .pdf .jsonl) found in {tmp}/empty",
        ),
        (
            ["index", "query", "nope", "q"],
            "error: index 'nope' not found at {tmp}/idx/nope (available: corrupt, good)",
        ),
        (
            ["ask", "good", "q", "--model", "nonsense"],
            "error: unknown model 'nonsense': use smollm2-135m-instruct, a local directory, a "
            "`raftkit train` run, or a Hugging Face id (org/name from the HF cache, hf://org/name "
            "to download)",
        ),
        (
            ["index", "query", "good", "q", "--set", "retrieval.embedding.model=org/other"],
            "error: index 'good' was built with embedder 'all-minilm-l6-v2', not 'org/other'; "
            "rebuild it with --overwrite to switch",
        ),
        (
            ["index", "build", "{docs}", "--name", "good"],
            "error: index 'good' already exists at {tmp}/idx/good; use --overwrite to rebuild it "
            "or `raftkit index update` to refresh it",
        ),
        (
            ["index", "build", "{docs}", "--name", "x", "--set", "retrieval.chunking.overlap=999"],
            "error: config: retrieval.chunking.overlap (999) must be smaller than size (256)",
        ),
        (
            ["index", "build", "{docs}", "--name", "x", "--config", "{tmp}/none.yaml"],
            "error: config file not found: {tmp}/none.yaml",
        ),
        (
            ["index", "query", "corrupt", "q"],
            "error: index 'corrupt' at {tmp}/idx/corrupt is corrupt: vectors.npy is missing; "
            "rebuild it with `raftkit index build DOCS --name NAME --overwrite`",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_keeps_the_index(
    capsys, tmp_path, built_index, docs_dir, argv, message
):
    idx = tmp_path / "idx"
    shutil.copytree(built_index.path, idx / "good")
    shutil.copytree(built_index.path, idx / "corrupt")
    (idx / "corrupt" / "vectors.npy").unlink()
    (tmp_path / "empty").mkdir()
    before = (idx / "good" / "manifest.json").read_text()
    fill = {"tmp": str(tmp_path), "docs": str(docs_dir)}
    argv = [a.format(**fill) for a in argv]
    if argv[0] in ("index", "ask") and "--indexes-dir" not in argv:
        argv += ["--indexes-dir", str(idx)]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.strip().splitlines()[-1] == message.format(**fill)
    assert "Traceback" not in err and out == ""
    assert (idx / "good" / "manifest.json").read_text() == before


def test_console_script_exit_code_and_no_traceback(tmp_path):
    exe = shutil.which("raftkit", path=os.path.dirname(sys.executable))
    proc = subprocess.run(
        [exe, "index", "build", str(tmp_path / "missing"), "--name", "x"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: documents folder not found: {tmp_path / 'missing'}"
