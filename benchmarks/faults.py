"""Fault injection: SIGKILL raftkit's long commands at random moments, rerun, compare the output.

Each command is killed at random moments, rerun, and checked to resume to the output an
uninterrupted run writes, with nothing lost on the way.

    .venv/bin/python benchmarks/faults.py [--kills 20] [--render]

For each command: one uninterrupted reference run; then, --kills times, a run killed (SIGKILL to its
whole process group) at a random moment within its expected duration. After every kill the output
that was there before must still be readable, and the next rerun of the same command continues;
when a run completes, its output is compared with the reference. Commands: `index update`,
`build-dataset --qa`, `build-dataset` with model generation, `train` (killed after its first
checkpoint, resumed with --resume) and `compare`. Writes benchmarks/data/faults.json and its
section.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from results import DATA, ROOT, bench_main, describe, load, machine, table

DEMO = ROOT / "corpora" / "demo"
RAFTKIT = [sys.executable, "-m", "raftkit.cli"]
ENV = {**os.environ, "RAFTKIT_QUIET": "1"}


def raftkit(argv: list, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*RAFTKIT, *map(str, argv)],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(argv: list, cwd: Path) -> float:
    """Run to completion; returns seconds. Exits the benchmark on a failure."""
    t0 = time.perf_counter()
    proc = raftkit(argv, cwd)
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(map(str, argv))} failed: {err.decode()[-2000:]}")
    return time.perf_counter() - t0


def kill_after(argv: list, cwd: Path, seconds: float, ready=None) -> bool:
    """Start the command, SIGKILL it `seconds` later (after `ready()` first holds, when given);
    returns True when it finished on its own before that."""
    proc = raftkit(argv, cwd)
    start = time.perf_counter()
    while proc.poll() is None:
        if (ready is None or ready()) and time.perf_counter() - start >= seconds:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False
        time.sleep(0.05)
    return proc.returncode == 0


def digest(root: Path, names: list[str]) -> str:
    """A hash of the named files under `root` (a missing file counts as different)."""
    h = hashlib.sha256()
    for name in names:
        path = root / name
        h.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"<missing>"))
    return h.hexdigest()


def tensors_digest(path: Path) -> str:
    from safetensors.torch import load_file

    h = hashlib.sha256()
    for key, value in sorted(load_file(str(path)).items()):
        h.update(key.encode() + value.float().numpy().tobytes())
    return h.hexdigest()


class Scenario:
    """One command under test: how to prepare, run, check and fingerprint its output."""

    name = ""
    duration_s = 10.0

    def prepare(self, work: Path) -> None: ...

    def argv(self, work: Path) -> list: ...

    def readable(self, work: Path) -> bool:
        return True

    def fingerprint(self, work: Path) -> str: ...

    def rerun_argv(self, work: Path) -> list:
        return self.argv(work)

    finished = ""  # the file that marks a complete output (relative to the work folder)

    def done(self, work: Path) -> bool:
        """Whether the output is complete (a rerun would be refused or do nothing)."""
        return bool(self.finished) and (work / self.finished).is_file()

    def state(self, work: Path) -> str:
        """What a kill left behind, in a few words (logged per kill)."""
        return "complete" if self.done(work) else "incomplete"


class IndexUpdate(Scenario):
    name = "index update (demo v1 -> v2)"

    def prepare(self, work):
        finish(
            ["index", "build", DEMO / "v1", "--name", "demo", "--indexes-dir", work / "idx"], work
        )

    def argv(self, work):
        return ["index", "update", DEMO / "v2", "--name", "demo", "--indexes-dir", work / "idx"]

    def readable(self, work):
        return (
            subprocess.run(
                [*RAFTKIT, "index", "query", "demo", "HTTP port", "--indexes-dir", work / "idx"],
                cwd=work,
                env=ENV,
                capture_output=True,
            ).returncode
            == 0
        )

    def fingerprint(self, work):
        return digest(work / "idx" / "demo", ["chunks.jsonl", "vectors.npy", "index.faiss"])


class BuildQA(Scenario):
    name = "build-dataset --qa (demo v1)"
    finished = "ds/manifest.json"
    OUTPUTS = [
        f"{form}_{split}.jsonl"
        for form in ("chat", "completion", "preference", "dsf")
        for split in ("train", "eval")
    ]

    def argv(self, work):
        return self.build(
            work,
            "--qa",
            DEMO / "train_qa_v1.jsonl",
            "qa.answer_field=answer",  # given answers: no model call
            "checkpoint_every=16",
        )

    @staticmethod
    def build(work, *extra) -> list:
        """build-dataset of the demo v1 pages into work/ds (`extra`: options, key=value sets)."""
        options = [x for x in extra if not isinstance(x, str) or "=" not in x]
        sets = [a for x in extra if isinstance(x, str) and "=" in x for a in ("--set", x)]
        return [
            "build-dataset",
            DEMO / "v1",
            *options,
            "--out",
            work / "ds",
            "--config",
            ROOT / "recipes" / "raft_build.yaml",
            "--set",
            f"retrieval.indexes_dir={work / 'idx'}",
            *sets,
        ]

    def readable(self, work):
        out = work / "ds"
        return not (out / "manifest.json").exists() or all(
            (out / n).is_file() for n in self.OUTPUTS
        )

    def fingerprint(self, work):
        return digest(work / "ds", self.OUTPUTS)


class BuildGenerated(BuildQA):
    name = "build-dataset, model-written (4 chunks)"

    def argv(self, work):
        return self.build(
            work,
            "questions.max_chunks=4",
            "questions.per_chunk=1",
            "questions.max_new_tokens=32",
            "answers.max_new_tokens=48",
            "checkpoint_every=1",
            "assembly.eval_fraction=0",
        )


class Train(Scenario):
    name = "train (SFT-LoRA, killed after its first checkpoint)"
    finished = "run/run.json"

    def prepare(self, work):
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        from raftkit.models import load_tokenizer

        tok = load_tokenizer("smollm2-135m-instruct")
        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        LlamaForCausalLM(cfg).save_pretrained(work / "tiny")
        tok.save_pretrained(work / "tiny")

    def argv(self, work):
        return [
            "train",
            "--config",
            ROOT / "recipes" / "sft_lora_tiny.yaml",
            "--set",
            f"model={work / 'tiny'}",
            "--set",
            f"output_dir={work / 'run'}",
            "--set",
            "optim.max_steps=12",
            "--set",
            "optim.save_steps=2",
            "--set",
            f"data.path={ROOT / 'tests/assets/train/raft_train.jsonl'}",
            "--set",
            f"data.eval_path={ROOT / 'tests/assets/train/raft_eval.jsonl'}",
        ]

    def rerun_argv(self, work):
        return self.argv(work) + (
            ["--resume"] if list((work / "run").glob("checkpoint-*")) else ["--overwrite"]
        )

    def fingerprint(self, work):
        return tensors_digest(work / "run" / "model" / "adapter_model.safetensors")

    def state(self, work):
        """The checkpoints a kill left (`+`: with trainer_state.json) and whether model/ exists."""
        run = work / "run"
        points = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        marks = [
            p.name.split("-")[1] + ("+" if (p / "trainer_state.json").is_file() else "-")
            for p in points
        ]
        return f"checkpoints {' '.join(marks) or 'none'}; model/ {(run / 'model').is_dir()}"


class Compare(Scenario):
    name = "compare (compare_tiny: 2 systems x 8 questions)"
    finished = "report/results.json"

    def argv(self, work):
        return [
            "compare",
            "--config",
            ROOT / "recipes" / "compare_tiny.yaml",
            "--out",
            work / "report",
            "--set",
            f"indexes_dir={work / 'idx'}",
            # the recipe's paths are relative to the repository; the command runs in `work`
            "--set",
            f"questions.path={ROOT / 'tests' / 'assets' / 'compare' / 'qa.jsonl'}",
            "--set",
            f"build_indexes.compare-tiny={ROOT / 'tests' / 'assets' / 'docs'}",
            "--set",
            "generation.max_new_tokens=24",
            "--set",
            "generation.batch_size=1",
            "--set",
            "scoring.ragas=false",
        ]

    def readable(self, work):
        return not (work / "report").exists() or (work / "report" / ".work").is_dir()

    def fingerprint(self, work):
        return digest(work / "report", ["per_question.csv"])


SCENARIOS = [IndexUpdate(), BuildQA(), BuildGenerated(), Train(), Compare()]


def trial(scenario: Scenario, root: Path, kills: int, rng: random.Random) -> dict:
    """The reference run, then `kills` killed runs, each followed by a rerun to complete it."""
    import shutil

    ref, work = root / "reference", root / "killed"
    for folder in (ref, work):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        scenario.prepare(folder)
    seconds = finish(scenario.argv(ref), ref)
    want = scenario.fingerprint(ref)
    same, unreadable, completed_before_kill, log = 0, 0, 0, []
    for _ in range(kills):
        ready = (
            (lambda: list((work / "run").glob("checkpoint-*")))
            if isinstance(scenario, Train)
            else None
        )
        if kill_after(scenario.rerun_argv(work), work, rng.uniform(0.2, 0.9) * seconds, ready):
            completed_before_kill += 1
        unreadable += not scenario.readable(work)
        left = scenario.state(work)
        if not scenario.done(work):
            finish(scenario.rerun_argv(work), work)  # the user reruns the same command
        ok = scenario.fingerprint(work) == want
        same += ok
        log.append({"left": left, "same": ok})
        if isinstance(scenario, Train):  # the next trial starts from a fresh run again
            shutil.rmtree(work / "run")
        else:
            shutil.rmtree(work)
            work.mkdir()
            scenario.prepare(work)
    return {
        "command": scenario.name,
        "kills": kills,
        "same_output": same,
        "unreadable_after_kill": unreadable,
        "finished_before_the_kill": completed_before_kill,
        "reference_s": seconds,
        "kill_log": log,
    }


def measure(args) -> dict:
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    only = [s for s in SCENARIOS if not args.only or any(o in s.name for o in args.only)]
    if args.jobs > 1:  # commands side by side, one thread each: no two fight over a core
        ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def one(s: Scenario) -> dict:
        # each command its own seeded stream, so the kill moments do not depend on --jobs
        rng = random.Random(f"{args.seed}/{s.name}")
        t = trial(s, root / s.__class__.__name__, args.kills, rng)
        print(t, file=sys.stderr, flush=True)
        return t

    commit = machine()["commit"]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        trials = {t["command"]: {**t, "commit": commit} for t in pool.map(one, only)}
    if args.merge and (DATA / "faults.json").is_file():  # keep the saved trials of the others
        kept = {t["command"]: t for t in load("faults")["trials"]}
        trials = {s.name: trials.get(s.name) or kept.get(s.name) for s in SCENARIOS}
    return {
        "kills": args.kills,
        "seed": args.seed,
        "jobs": args.jobs,
        "trials": [t for t in trials.values() if t],
    }


def render(d: dict) -> str:
    rows = [
        [
            t["command"],
            t.get("commit", d["machine"]["commit"]),
            t["kills"],
            f"{t['same_output']} of {t['kills']}",
            t["unreadable_after_kill"],
            t["finished_before_the_kill"],
            round(t["reference_s"], 1),
        ]
        for t in d["trials"]
    ]
    lost = sum(t["kills"] - t["same_output"] + t["unreadable_after_kill"] for t in d["trials"])
    return "\n\n".join(
        [
            "## Fault injection (`benchmarks/faults.py`)",
            f"Machine: {describe(d['machine'])}. Command: `{d['command']}` (with --merge the "
            "other rows keep their earlier measurement, at the commit in their row)"
            + (
                f" ({d['jobs']} commands at a time, each on one thread)."
                if d.get("jobs", 1) > 1
                else "."
            ),
            "Each command ran once uninterrupted (the reference), then was killed with SIGKILL "
            "(its whole process group) at a uniformly random moment between 20% and 90% of the "
            "reference's duration; the train runs were killed only once their first checkpoint "
            "existed. After each kill the previous output was checked readable (an index answers a "
            "query; a dataset or report folder is either complete or resumable), then the same "
            "command was rerun (train with --resume) and its output compared byte for byte with "
            "the reference (train: the adapter's tensors).",
            table(
                [
                    "command",
                    "commit",
                    "kills",
                    "resumed to the same output",
                    "unreadable after a kill",
                    "runs that finished before their kill",
                    "reference s",
                ],
                rows,
            ),
            "Nothing was lost in any trial."
            if lost == 0
            else f"{lost} trials lost or changed output: see the table.",
            *_differing(d),
        ]
    )


def _differing(d: dict) -> list[str]:
    """One line per command whose resumed output differed: what each such kill left behind."""
    lines = []
    for t in d["trials"]:
        bad = [k["left"] for k in t.get("kill_log", []) if not k["same"]]
        if bad:
            lines.append(
                f"{t['command']}: the kills that resumed differently left "
                + "; ".join(f"({b})" for b in bad)
            )
    return lines


def add_args(parser) -> None:
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: keep the saved trials of the other commands in the table",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="commands under test at once (each on 1 thread when >1)"
    )
    parser.add_argument(
        "--only", nargs="*", help="run only the commands whose name contains these words"
    )


if __name__ == "__main__":
    bench_main("faults", __doc__, measure, render, add_args)
