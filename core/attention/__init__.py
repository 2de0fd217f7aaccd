"""Cross-attention with explicit probabilities, its masks and its records."""
