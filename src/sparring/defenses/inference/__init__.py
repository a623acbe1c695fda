"""Inference-time defences: wrappers that return a hardened classifier."""
