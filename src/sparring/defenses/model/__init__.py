"""Inspection and repair of a trained model."""

from sparring.defenses.model.fine_pruning import FinePruning, FinePruningResult

__all__ = ["FinePruning", "FinePruningResult"]
