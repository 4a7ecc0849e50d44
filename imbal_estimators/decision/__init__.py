"""From probabilities to decisions and scores: validation metrics, the binary threshold,
temperature scaling, post-hoc logit adjustment."""
