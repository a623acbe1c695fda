"""sparring: attack your own models across the adversarial-ML threat matrix and measure what each defence buys."""

__version__ = "0.1.0"
