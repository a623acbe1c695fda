"""Attacks, one sub-package per threat-matrix family."""
