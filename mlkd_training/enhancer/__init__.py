"""DarkLighter training: its non-reference losses and the trainer behind ``mlkd train-enhancer``."""
