"""Imbalance corrections that are not losses: class-weight strategies (``alpha``), samplers,
and the rules for which corrections stack."""
