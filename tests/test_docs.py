"""docs/ that is generated stays generated: docs/metrics.md is what the metric registry writes, and
the README and docs link only to pages that exist."""

import re
from pathlib import Path

from raftkit.compare import glossary, metrics

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_page_is_the_registrys():
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert page == glossary.metrics_markdown(), (
        "docs/metrics.md is out of date with raftkit/compare/metrics.py: run "
        "`python -m raftkit.compare.glossary`"
    )


def test_metrics_page_defines_every_metric_under_its_group():
    text = glossary.metrics_markdown()
    for m in metrics.METRICS:
        assert f"**{m.label}** (`{m.name}`): {glossary.inline(m.definition)}" in text, m.name
        heading = text.rindex("\n## ", 0, text.index(f"(`{m.name}`)"))
        assert text[heading + 4 :].lower().startswith(m.group), (m.name, m.group)


def test_metrics_page_follows_a_changed_registry(monkeypatch):
    before = glossary.metrics_markdown()
    changed = metrics.METRICS[0].__class__(
        **{**metrics.METRICS[0].__dict__, "definition": "A new definition."}
    )
    monkeypatch.setattr(metrics, "METRICS", [changed, *metrics.METRICS[1:]])
    after = glossary.metrics_markdown()
    assert after != before and "A new definition." in after


def test_links_into_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists (scaling.md may be
    the one page still being written; it is checked once it exists)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    allowed = [] if (ROOT / "docs" / "scaling.md").exists() else ["scaling.md"]
    broken = [b for b in broken if not any(b.endswith(a) for a in allowed)]
    assert not broken, broken


def _commands(parser, name=""):
    """(command name, parser) for raftkit and every command and subcommand under it."""
    import argparse

    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _commands(p, f"{name} {sub}".strip())


def test_every_command_says_what_it_does_with_an_example():
    from raftkit.cli import build_parser

    for name, parser in _commands(build_parser()):
        text = parser.format_help()
        assert parser.description and len(parser.description) > 40, f"raftkit {name}: description"
        assert f"raftkit {name}".strip() + " " in (parser.epilog or ""), (
            f"raftkit {name} --help shows no example of itself"
        )
        assert "thin table" not in text


def test_every_help_example_parses():
    """The examples of `raftkit [COMMAND] --help` reach their command's handler."""
    import shlex

    from raftkit import cli
    from raftkit.usage import HELP

    examples = [
        line
        for _, epilog in HELP.values()
        for line in epilog.replace("\\\n", " ").splitlines()
        if line.startswith("  raftkit ")
    ]
    assert len(examples) >= len(HELP)
    for line in examples:
        argv = shlex.split(line)[1:]
        args = cli.build_parser().parse_args(argv)
        words = [w for w in argv[:2] if not w.startswith("-")]
        expected = "cmd_" + "_".join(words if words[0] == "index" else words[:1]).replace("-", "_")
        assert args.func is getattr(cli, expected), line
