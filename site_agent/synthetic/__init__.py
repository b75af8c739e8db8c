"""Synthetic sets: sampled from a trained generator, audited, and exported."""
