"""Files never seen half-written."""
