"""Training-data attacks: label flips, backdoors, clean-label poisoning."""
