"""The diagnostic networks, in `shared` because sites must rebuild them to score a model locally."""

from __future__ import annotations

from monai.networks.nets import Classifier, UNet
from torch import nn

# Small enough to train on a CPU at 32^3, deep enough to see a lesion's texture and position.
CLASSIFIER_CHANNELS = (16, 32, 64, 128)
SEGMENTER_CHANNELS = (8, 16, 32, 64)


def build_classifier(*, cube: int, classes: int) -> nn.Module:
    return Classifier(
        in_shape=(1, cube, cube, cube),
        classes=classes,
        channels=CLASSIFIER_CHANNELS,
        strides=(2,) * len(CLASSIFIER_CHANNELS),
        num_res_units=1,
        dropout=0.2,
    )


def build_segmenter() -> nn.Module:
    """Lesion versus background; the class comes from the classifier (as in the DiffGuard study, the
    mask marks the lesion, whatever its kind)."""
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        channels=SEGMENTER_CHANNELS,
        strides=(2,) * (len(SEGMENTER_CHANNELS) - 1),
        num_res_units=1,
    )
