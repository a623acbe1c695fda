"""Training-set sanitisation: score and flag suspicious samples."""
