"""Training-time defences (adversarial training, DP-SGD, augmentation)."""
