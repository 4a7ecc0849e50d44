"""``ImageImbalanceClassifier`` and its save/load."""
