"""The README's commands are real: every `raftkit ...` line of the README and docs/ parses with the
CLI's own parser, every `make` target exists, and the retrieval block runs as written (litgpt's
test_readme.py idea)."""

import re
import shlex
import shutil
from pathlib import Path

import pytest

from raftkit.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_commands(text: str) -> list[str]:
    """Command lines of the ```bash blocks, continuations joined, comments and [optional] parts
    dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(
                r"\[[^\]]*\]", "", line
            ).strip()  # `[--json]` marks an option, not text to type
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


COMMANDS = bash_commands(README)
# The pages under docs/ hold the rest of the commands a user copies: they are checked the same way.
DOC_COMMANDS = [
    c
    for page in sorted((ROOT / "docs").glob("*.md"))
    for c in bash_commands(page.read_text(encoding="utf-8"))
]


def test_readme_has_the_two_commands_on_top():
    assert COMMANDS[:2] == ["make demo", "make test"]


@pytest.mark.parametrize(
    "line", list(dict.fromkeys(c for c in COMMANDS + DOC_COMMANDS if c.startswith("raftkit ")))
)
def test_every_raftkit_line_parses_and_its_config_validates(line):
    """Each line parses (argparse exits on a bad one), reaches its command's handler, and its recipe
    with its --set values loads without a config error."""
    from raftkit import cli, config

    argv = shlex.split(line)[1:]
    args = build_parser().parse_args(argv)
    words = [w for w in argv[:2] if not w.startswith("-")]
    expected = "cmd_" + "_".join(words[:2] if words[0] == "index" else words[:1]).replace("-", "_")
    assert args.func is getattr(cli, expected)
    schema = {
        "build-dataset": "raftkit.raft.config:RaftBuildConfig",
        "train": "raftkit.train.config:TrainConfig",
        "compare": "raftkit.compare.config:CompareConfig",
    }.get(words[0])
    if schema and getattr(args, "config", None):
        module, _, name = schema.partition(":")
        cls = getattr(__import__(module, fromlist=[name]), name)
        config.load(cls, ROOT / args.config, args.set)


@pytest.mark.parametrize(
    "line", list(dict.fromkeys(c for c in COMMANDS + DOC_COMMANDS if c.startswith("make ")))
)
def test_every_make_target_exists(line):
    makefile = (ROOT / "Makefile").read_text()
    for target in line.split()[1:]:
        if "=" not in target:
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.MULTILINE), target


@pytest.mark.slow
def test_retrieval_block_runs_as_written(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "corpora" / "demo", tmp_path / "corpora" / "demo")
    monkeypatch.chdir(tmp_path)
    block = [c for c in COMMANDS if c.startswith(("raftkit index", "raftkit ask"))][:4]
    assert [c.split()[1:3] for c in block] == [
        ["index", "build"],
        ["index", "query"],
        ["index", "update"],
        ["ask", "demo"],
    ]
    for line in block:
        argv = shlex.split(line)[1:]
        if argv[0] == "ask":  # a short reply: the test checks that it runs, not what it says
            argv += ["--set", "generation.max_new_tokens=24"]
        assert main(argv) == 0, line
    out = capsys.readouterr().out
    assert "built index 'demo'" in out and "http-api.md#" in out
    assert "updated index 'demo': 6 added, 16 changed, 0 deleted, 8 unchanged documents" in out
    assert (
        "7421" in out
    )  # the HTTP port, quoted from the docs by the query and (usually) the answer


def architecture_section(text: str) -> str:
    """The README's "## Architecture" section, up to the next second-level heading."""
    start = text.index("## Architecture\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_architecture_section_names_every_module():
    """The README's map of the modules matches the code: every module of raftkit/ is on it, and
    every file it names at the top level exists. A new module fails this until its name is added to
    the map."""
    section = architecture_section(README)
    package = ROOT / "raftkit"
    modules = {p.stem for p in package.rglob("*.py") if p.stem != "__init__"}
    missing = sorted(m for m in modules if not re.search(rf"\b{m}\b", section))
    assert not missing, (
        f"modules missing from the README's architecture section (add each to its folder's line): "
        f"{missing}"
    )
    for name in re.findall(r"^  (\w+(?:\.py|/))", section, flags=re.MULTILINE):
        assert (package / name.rstrip("/")).exists(), name
