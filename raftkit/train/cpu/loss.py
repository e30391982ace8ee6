"""The answer-only loss on CPU: the LM head runs only where a label follows.

TRL's fused LM head scores every position on CPU (its compact path is Triton-only) and adds entropy
and top-1 metrics. Here the LM head runs only before answer tokens (`logits_to_keep`): in RAFT rows
most tokens are documents, so this skips most of the 49k-way head and its float32 logits, for the
same loss (tests/test_train_sft.py checks it against TRL's).
"""

from __future__ import annotations


def answer_only_trainer(base):
    """`base` (a TRL trainer class) whose loss of a packed row is `answer_only_loss`."""

    class CpuSFTTrainer(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            if labels.shape[0] != 1:  # unpacked batches: the model's own loss
                out = model(**inputs, use_cache=False, num_items_in_batch=num_items_in_batch)
                loss = out.loss
            else:
                loss, out = answer_only_loss(model, inputs, num_items_in_batch, True)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # num_items_in_batch counts the tokens of every rank and DDP averages gradients over
                # the ranks: scaled back as Trainer.compute_loss does, or a 2-process run would take
                # half-size steps
                loss = loss * self.accelerator.num_processes
            return (loss, out) if return_outputs else loss

    return CpuSFTTrainer


def answer_only_loss(model, inputs, num_items_in_batch=None, return_outputs=False):
    """The causal LM loss of one packed row, with the LM head applied only before label tokens."""
    import torch
    import torch.nn.functional as F

    inputs = dict(inputs)
    targets = inputs.pop("labels")[0, 1:]
    where = (targets != -100).nonzero().squeeze(-1)
    keep = where if len(where) else torch.tensor([0], device=targets.device)
    out = model(**inputs, use_cache=False, logits_to_keep=keep)
    logits = out.logits[0].float()
    if not len(where):
        # a row without answer tokens: no loss, but a graph to backpropagate
        loss = logits.sum() * 0.0
    else:
        total = F.cross_entropy(logits, targets[where], reduction="sum")
        loss = total / (num_items_in_batch if num_items_in_batch is not None else len(where))
    return (loss, out) if return_outputs else loss
