"""The raftkit command line: one command per pipeline step, each calling a library function.

Every handler here does three things: load the config, call the library function a Python user would
call, print what it returns. What `--help` tells a user (what each command does, with examples) is
in raftkit/usage.py. Heavy libraries are imported inside the handlers, so `raftkit --help` answers
at once. Every RaftkitError becomes one line on stderr and exit code 2; nothing the user
typed yields a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from raftkit.usage import HELP


def _retrieval_config(args):
    from raftkit import config
    from raftkit.retrieval.config import RaftkitConfig

    return config.load(RaftkitConfig, getattr(args, "config", None), args.set)


def cmd_index_build(args) -> None:
    from raftkit.retrieval.indexing import build_index

    cfg = _retrieval_config(args)
    cfg.retrieval.indexes_dir = args.indexes_dir
    index = build_index(args.docs, args.name, cfg, overwrite=args.overwrite)
    c = index.manifest["counts"]
    print(
        f"built index '{index.name}' at {index.path}: {c['documents']} documents, {c['chunks']} "
        f"chunks ({index.manifest['index']['effective_kind']})"
    )


def cmd_index_update(args) -> None:
    from raftkit.retrieval.indexing import update_index

    index, s = update_index(args.docs, args.name, args.indexes_dir, args.set)
    print(
        f"updated index '{index.name}': {s.added} added, {s.changed} changed, {s.deleted} deleted, "
        f"{s.unchanged} unchanged documents; embedded {s.chunks_embedded} of {s.chunks_total} "
        f"chunks in {s.embed_seconds:.1f}s"
    )


def cmd_index_query(args) -> None:
    from raftkit.retrieval.index import load_index

    hits = load_index(args.name, args.indexes_dir, args.set).search([args.text], args.k)[0]
    if args.json:
        print(
            json.dumps(
                [{"rank": h.rank, "score": h.score, **h.chunk.to_dict()} for h in hits], indent=2
            )
        )
        return
    for h in hits:
        snippet = " ".join(h.chunk.text.split())[:100]
        print(f"{h.rank:>2}  {h.score:.3f}  {h.chunk.id}  {snippet}")


def cmd_index_diff(args) -> None:
    from raftkit.retrieval.history import changes, format_changes
    from raftkit.retrieval.index import load_index

    found = changes(load_index(args.name, args.indexes_dir), args.since)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(format_changes(found))


def cmd_probes(args) -> None:
    from raftkit import config
    from raftkit.compare.probes import ProbesRunConfig, write_probes

    cfg = config.load(ProbesRunConfig, args.config, args.set)
    made = write_probes(
        args.name, args.out, cfg, args.since, args.indexes_dir, overwrite=args.overwrite
    )
    c = made.counts
    print(
        f"wrote {len(made.rows)} probes to {args.out} in {made.seconds:.1f}s: {c['changed']} "
        f"changed, {c['added']} added, {c['unanswerable']} unanswerable"
    )
    if made.skipped:
        why = ", ".join(f"{n} {reason}" for reason, n in made.skipped.items())
        print(f"  changed spans not probed: {why}")


def cmd_ask(args) -> None:
    from raftkit.generate import make_generator
    from raftkit.models import runtime
    from raftkit.retrieval import gate
    from raftkit.retrieval.index import load_index
    from raftkit.retrieval.rag import answer_questions

    index = load_index(args.name, args.indexes_dir, args.set)
    gen_cfg = index.cfg.generation.model_copy(update={"model": args.model} if args.model else {})
    r = index.cfg.retrieval
    check = gate.build(
        r.min_score, r.verifier, r.gate, gen_cfg.model, index, r.rerank, r.candidates
    )
    generator = make_generator(gen_cfg, runtime(index.cfg.runtime))
    result = answer_questions(
        index, generator, [args.question], args.k or index.cfg.retrieval.top_k, check
    )[0]
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        if not result.sources:  # the evidence gate refused: say why
            print(result.reply.splitlines()[0])
        print(result.answer)
        print(f"sources: {', '.join(result.sources) or 'none'}")


def cmd_build_dataset(args) -> None:
    from pathlib import Path

    from raftkit import config
    from raftkit.raft.build import build_dataset, default_name, format_summary
    from raftkit.raft.config import RaftBuildConfig

    cfg = config.load(RaftBuildConfig, args.config, args.set)
    out = Path(args.out or Path("datasets") / default_name(args.docs))
    print(format_summary(build_dataset(cfg, args.docs, out, qa=args.qa, overwrite=args.overwrite)))


def cmd_train(args) -> None:
    import warnings

    from raftkit.models import rank
    from raftkit.train.run import launch, load_config, shown_folder, train

    warnings.filterwarnings(
        "ignore", category=FutureWarning
    )  # transformers v6 renames, not ours to fix
    cfg = load_config(args.config, args.set)
    if args.launcher == "accelerate":
        launch(args, cfg)
        return
    s = train(cfg, overwrite=args.overwrite, resume=args.resume)
    if rank() == 0 and "headline" in s:  # a stage with no training loop (verifier) says its own
        print(f"{s['headline']}; run folder {shown_folder(cfg)}")
    elif rank() == 0:
        print(
            f"trained {cfg.stage}/{cfg.method} in {s['wall_s']:.1f}s: {s['steps']} steps, "
            f"{s['tokens']} tokens ({s['tokens_per_s']:.0f} tok/s, {s['dtype']}), peak "
            f"{s['peak_mem_mb']:.0f} MiB, loss {s['first_loss']:.3g} -> {s['final_loss']:.3g}; run "
            f"folder {shown_folder(cfg)}"
        )


def cmd_export(args) -> None:
    import warnings

    from raftkit.train.export import export_run

    warnings.filterwarnings(
        "ignore", category=FutureWarning
    )  # transformers v6 renames, not ours to fix
    out = export_run(args.run, args.out, merge=args.merge, overwrite=args.overwrite)
    print(f"exported {'merged model' if args.merge else 'model'} of {args.run} to {out}")


def cmd_compare(args) -> None:
    from raftkit import config
    from raftkit.compare.config import CompareConfig
    from raftkit.compare.run import compare, summary_table

    cfg = config.load(CompareConfig, args.config, args.set)
    sets = "".join(f" --set {s}" for s in args.set)
    cmd = f"raftkit compare --config {args.config}{sets} --out {args.out}" + (
        " --overwrite" if args.overwrite else ""
    )
    report = compare(cfg, args.out, overwrite=args.overwrite, command=cmd)
    print(f"report: {report.out / 'report.html'}")
    print(summary_table(report.systems))
    for line in report.results["verdict"]:
        print(f"  {line}")


# ----------------------------------------------------------------------------- the table
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes its description and examples from HELP by its command; the
    subcommands' parsers are of the same class, so every command gets its own."""

    def __init__(self, prog: str | None = None, **kwargs):
        about = HELP.get((prog or "raftkit").removeprefix("raftkit").strip())
        if about:
            kwargs.setdefault("description", about[0])
            kwargs.setdefault("epilog", about[1])
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, **kwargs)


def _sets(
    p: argparse.ArgumentParser,
    what: str = "override one config value (repeatable); wins over the YAML",
):
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help=what)


def _index_commands(sub) -> None:
    index = sub.add_parser("index", help="build, update and query a FAISS index of documents")
    isub = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    for action, fn, text in (
        ("build", cmd_index_build, "index a folder of documents"),
        ("update", cmd_index_update, "re-embed only added/changed documents, drop deleted"),
    ):
        p = isub.add_parser(action, help=text)
        p.add_argument("docs", help="folder (searched recursively) or .jsonl corpus")
        p.add_argument(
            "--name", required=True, help="index name (a plain folder name under --indexes-dir)"
        )
        p.add_argument("--indexes-dir", default="indexes", help="where indexes live")
        if action == "build":
            p.add_argument("--config", help="YAML with retrieval/generation/runtime sections")
            _sets(p)
            p.add_argument("--overwrite", action="store_true", help="replace an existing index")
        else:
            _sets(
                p, "override a search or runtime setting; embedder and chunking are the index's own"
            )
        p.set_defaults(func=fn)
    p = isub.add_parser("query", help="the chunks nearest to a text, with their scores")
    p.add_argument("name", help="index name")
    p.add_argument("text", help="the text to search for")
    p.add_argument("-k", type=int, default=5, help="chunks to print (default 5)")
    p.add_argument("--json", action="store_true", help="print whole chunks as JSON")
    p.add_argument("--indexes-dir", default="indexes", help="where indexes live")
    _sets(p)
    p.set_defaults(func=cmd_index_query)
    p = isub.add_parser(
        "diff",
        help="what the last update changed: documents, sentences old -> new",
        description="Show what the last update of an index (or the last N) changed, from the\n"
        "history the index keeps: added, changed and deleted documents, and for each\n"
        "changed one its changed sentences, old -> new, with the differing spans.",
        epilog="examples:\n  raftkit index diff demo\n  raftkit index diff demo --since 2 --json",
    )
    p.add_argument("name", help="index name")
    p.add_argument("--since", type=int, default=1, help="the last N recorded updates (default 1)")
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.add_argument("--indexes-dir", default="indexes", help="where indexes live")
    p.set_defaults(func=cmd_index_diff)


def cmd_config(args) -> None:
    from raftkit import settings

    print(settings.render(settings.keys(args.section or "")))


def _probes_command(sub) -> None:
    p = sub.add_parser(
        "probes",
        help="freshness questions written from what an index update changed",
        description="Write freshness probes from what the last update of an index changed, with\n"
        "no labels and no model: a changed value becomes a fill-in-the-blank question\n"
        "(answer = the new value, answer_v1 = the old one), sentences of added documents\n"
        "become `added` questions and those of deleted ones `unanswerable`. The .jsonl\n"
        "is a QA file that compare and build-dataset --qa read as it is.",
        epilog="examples:\n  raftkit probes demo --out reports/demo-probes.jsonl\n"
        "  raftkit probes demo --out probes.jsonl --since 2 --set probes.max_per_doc=3",
    )
    p.add_argument("name", help="index name")
    p.add_argument("--out", required=True, help="the QA .jsonl to write")
    p.add_argument("--since", type=int, default=1, help="the last N recorded updates (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--config", help="YAML: a probes section (and generation, for phrasing: model)")
    _sets(p)
    p.add_argument("--indexes-dir", default="indexes", help="where indexes live")
    p.set_defaults(func=cmd_probes)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="raftkit")  # its subcommands' parsers are _Parsers too: HELP for each
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _index_commands(sub)

    p = sub.add_parser("ask", help="answer a question from an index with plain RAG")
    p.add_argument("name", help="index name")
    p.add_argument("question", help="the question (quote it)")
    p.add_argument("--model", help="generator (default: the index config's, smollm2-135m-instruct)")
    p.add_argument("-k", type=int, default=0, help="chunks to retrieve (default: retrieval.top_k)")
    p.add_argument("--json", action="store_true", help="print answer, sources and chunks as JSON")
    p.add_argument("--indexes-dir", default="indexes", help="where indexes live")
    _sets(p)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("build-dataset", help="write RAFT training data from a folder of documents")
    p.add_argument("docs", help="folder of documents (searched recursively) or .jsonl corpus")
    p.add_argument("--config", help="YAML recipe (e.g. recipes/raft_build.yaml)")
    _sets(p)
    p.add_argument("--out", help="output folder (default: datasets/<docs folder name>)")
    p.add_argument("--qa", help="bring your own questions: a QA .jsonl (skips question writing)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_build_dataset)

    p = sub.add_parser("train", help="fine-tune: SFT, DPO, reward model or RLHF; full, LoRA, QLoRA")
    p.add_argument(
        "--config", required=True, help="YAML recipe (recipes/<stage>_<method>[_tiny].yaml)"
    )
    _sets(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.add_argument("--launcher", choices=["none", "accelerate"], default="none")
    p.add_argument(
        "--accelerate-config", help="with --launcher accelerate: recipes/accelerate/*.yaml"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write a run's model as a standalone model (LoRA merged)")
    p.add_argument("run", help="run folder of `raftkit train`")
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base weights")
    p.add_argument("--out", required=True, help="the model folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an exported model folder")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "compare", help="score base, RAG, fine-tuned and RAFT systems; write a report"
    )
    p.add_argument("--config", required=True, help="YAML (recipes/compare*.yaml)")
    _sets(p)
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.set_defaults(func=cmd_compare)
    _probes_command(sub)

    p = sub.add_parser("config", help="every setting: key, type, default and what it does")
    p.add_argument("section", nargs="?", help="e.g. train, train.optim, retrieval (default: all)")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `raftkit` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from raftkit.errors import RaftkitError
    from raftkit.hub import go_offline
    from raftkit.ui import quiet_libraries

    go_offline()
    quiet_libraries()
    try:
        args.func(args)
    except RaftkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader stopped reading (`raftkit config | head`): nothing more to show, no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if os.environ.get("RAFTKIT_DEBUG") == "1":
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(
            f"error: unexpected {type(e).__name__}: {first} (RAFTKIT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
