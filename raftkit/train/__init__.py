"""`raftkit train`: SFT, DPO, reward model and RLHF (GRPO/RLOO) with full, LoRA or QLoRA, on TRL."""
