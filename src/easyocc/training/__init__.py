"""Training on pseudo-labels: the loop, distributed helpers, checkpoints."""
