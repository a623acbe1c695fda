"""Defences, one sub-package per layer they act on."""
