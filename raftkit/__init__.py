"""raftkit: put domain knowledge into language models (RAG, fine-tuning, RAFT) and prove what
worked."""

__version__ = "0.1.0"

from raftkit.hub import no_telemetry as _no_telemetry  # noqa: E402

# before ragas or huggingface_hub read their settings: nothing leaves the machine unasked
_no_telemetry()
