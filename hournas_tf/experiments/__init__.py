"""Experiments over the search and retraining: the ablation table."""
