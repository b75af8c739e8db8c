"""The public foundation model: a 3D latent diffusion model of chest CT, image and lesion mask
together, trained centrally on public CT only and fine-tuned per hospital under DP."""
