"""What happens during ``fit`` besides the forward pass: callbacks, checkpoints, the
divergence check, the internal validation split, device and precision, out-of-memory
handling."""
