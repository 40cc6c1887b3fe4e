"""Accuracy recovery for pruned ViTs: distillation fine-tuning (one process or torchrun), evaluation,
and attention fidelity against the unpruned model.

Modules: :mod:`.data` (ImageFolder loaders with timm transforms), :mod:`.distill` (KD losses),
:mod:`.checkpoint` (atomic resumable checkpoints), :mod:`.finetune` (the training loop),
:mod:`.evaluate` (top-1/top-5, throughput), :mod:`.fidelity` (attention-map KL/cosine), :mod:`.cli`.
"""
