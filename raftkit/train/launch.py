"""`raftkit train --launcher accelerate`: the same recipe, re-run under `accelerate launch`
(multi-GPU, FSDP or DeepSpeed ZeRO-2 as the accelerate config says). Each process runs
`raftkit train` itself."""

from __future__ import annotations

import sys
from pathlib import Path

from raftkit.errors import RaftkitError


def launch_command(args, output_dir: str | None = None) -> list[str]:
    """The argv that runs `raftkit train` (same config, --set, flags) under accelerate; raises
    RaftkitError.

    `output_dir` sends the ranks to another folder (the staging folder of an --overwrite run).
    """
    cfg = args.accelerate_config
    if not cfg:
        raise RaftkitError(
            "--launcher accelerate needs --accelerate-config (e.g. recipes/accelerate/fsdp.yaml)"
        )
    if not Path(cfg).is_file():
        raise RaftkitError(f"--accelerate-config {cfg}: file not found")
    check_accelerate_config(cfg)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(cfg),
        "--quiet",  # a failed rank: its own traceback and torchrun's summary, not the launcher's
        "-m",
        "raftkit.cli",
        "train",
        "--config",
        str(args.config),
    ]
    for item in args.set or []:
        cmd += ["--set", item]
    if output_dir:
        cmd += ["--set", f"output_dir={output_dir}"]
    # --overwrite is not passed on: the launcher stages and swaps the run folder once, around the
    # ranks.
    if args.resume:
        cmd.append("--resume")
    return (
        cmd  # the child keeps the default --launcher none, so it trains instead of launching again
    )


def check_accelerate_config(path: str) -> None:
    """Refuse an accelerate config that would not run as it reads; raises RaftkitError.

    FSDP with `use_cpu: true` is one: accelerate chooses FSDP only for GPU-type processes, so on CPU
    it trains plain DDP, every process holding the whole model (accelerate 1.16; torch's own
    `fully_shard` over gloo does shard on CPU).
    """
    import yaml

    try:
        acc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise RaftkitError(f"--accelerate-config {path}: not valid YAML") from None
    if not isinstance(acc, dict):
        raise RaftkitError(f"--accelerate-config {path}: expected a mapping (accelerate's config)")
    if acc.get("distributed_type") == "FSDP" and acc.get("use_cpu"):
        raise RaftkitError(
            f"--accelerate-config {path}: FSDP with use_cpu: true would train plain DDP (accelerate"
            " shards only on GPUs); on CPU use recipes/accelerate/cpu_ddp.yaml"
        )
