"""Inspection and repair of a trained model."""
