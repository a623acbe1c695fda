"""Availability attacks at test time (sponge examples)."""
