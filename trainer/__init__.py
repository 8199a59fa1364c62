"""Training for the moesearch MoE embedder: data, filtering, contrastive stages, mining, evaluation.

Entry point: ``python -m trainer data | filter | pretrain | mine | finetune | eval | recipe`` (see ``__main__``).
"""
