"""MCDM."""
