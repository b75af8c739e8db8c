"""The `ldm3d` backend: the public foundation's latent diffusion model, fine-tuned here under DP."""
