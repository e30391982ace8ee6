"""RAFT dataset building (`raftkit build-dataset`): questions, grounded answers, assembly,
formats."""
