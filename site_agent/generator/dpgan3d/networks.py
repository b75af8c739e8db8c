"""Generator and discriminator of the DP 3D GAN, from MONAI convolution blocks.

Both produce or read two channels: the CT box (window scaled to [-1, 1]) and its lesion mask
(mapped to [-1, 1] too, so the discriminator cannot tell real from fake by the mask's value range).

The discriminator is the only network that sees real data, so it alone is trained with DP-SGD:
GroupNorm, never BatchNorm (batch statistics mix patients and have no per-example gradient), and a
projection head (Miyato and Koyama 2018) for the class, so the class enters as an embedding whose
per-example gradient Opacus clips like any other weight. The generator sees only noise and the
discriminator's output, so it needs no DP of its own (post-processing).
"""

from __future__ import annotations

import math

import torch
from monai.networks.blocks import Convolution
from torch import nn

CHANNELS = 2  # image, mask
ACT = ("leakyrelu", {"negative_slope": 0.2})


def _levels(box: tuple[int, int, int]) -> tuple[int, tuple[int, int, int]]:
    """How many times the box halves down to a base grid of at least 4 voxels a side, and that grid.

    The base need not be cubic: a 48x48x64 box has 3 levels over a 6x6x8 base.
    """
    levels = 0
    while all(n % 2 ** (levels + 1) == 0 and n // 2 ** (levels + 1) >= 4 for n in box):
        levels += 1
    if levels < 2:
        raise ValueError(f"box {list(box)} must halve at least twice to a grid of 4 voxels or more a side")
    base = (box[0] >> levels, box[1] >> levels, box[2] >> levels)
    return levels, base


def _groups(channels: int) -> int:
    return min(8, channels // 2) or 1


def _block(in_ch: int, out_ch: int, *, strides: int = 1) -> Convolution:
    return Convolution(
        spatial_dims=3,
        in_channels=in_ch,
        out_channels=out_ch,
        strides=strides,
        kernel_size=3 if strides == 1 else 4,
        padding=1,
        act=ACT,
        norm=("group", {"num_groups": _groups(out_ch)}),
    )


class Generator(nn.Module):
    def __init__(self, *, box: tuple[int, int, int], classes: int, latent_dim: int, width: int) -> None:
        super().__init__()
        levels, self.grid = _levels(box)
        self.latent_dim = latent_dim
        self.base = width * 2**levels
        self.embed = nn.Embedding(classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, self.base * math.prod(self.grid))
        blocks: list[nn.Module] = []
        channels = self.base
        for _ in range(levels):
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), _block(channels, channels // 2)]
            channels //= 2
        self.body = nn.Sequential(*blocks)
        self.head = nn.Conv3d(channels, CHANNELS, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        h = nn.functional.leaky_relu(h.view(-1, self.base, *self.grid), 0.2)
        return torch.tanh(self.head(self.body(h)))


class Discriminator(nn.Module):
    def __init__(self, *, box: tuple[int, int, int], classes: int, width: int) -> None:
        super().__init__()
        levels, grid = _levels(box)
        blocks: list[nn.Module] = [_block(CHANNELS, width)]
        channels = width
        for _ in range(levels):
            blocks.append(_block(channels, channels * 2, strides=2))
            channels *= 2
        self.body = nn.Sequential(*blocks)
        features = channels * math.prod(grid)
        self.score = nn.Linear(features, 1)
        self.embed = nn.Embedding(classes, features)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.body(x).flatten(1)
        return self.score(h).squeeze(1) + (self.embed(labels) * h).sum(dim=1)
