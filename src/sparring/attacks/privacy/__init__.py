"""Privacy attacks: membership inference, extraction, inversion."""
