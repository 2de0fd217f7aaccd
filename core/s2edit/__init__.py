"""S2Edit."""
