"""raftkit: put domain knowledge into language models (RAG, fine-tuning, RAFT) and prove what worked."""

__version__ = "0.1.0"
