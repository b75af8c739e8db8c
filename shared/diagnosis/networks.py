"""The diagnostic networks, in `shared` because sites must rebuild them to score a model locally.

Both take any box whose edges halve three times (48x48x64 on a CPU, 96x96x128 on a GPU).
"""

from __future__ import annotations

from monai.networks.nets import Classifier, UNet
from torch import nn

# Small enough to train on a CPU at 48x48x64, deep enough to see a lesion's texture and position.
CLASSIFIER_CHANNELS = (16, 32, 64, 128)
SEGMENTER_CHANNELS = (16, 32, 64, 128)


def build_classifier(*, box: tuple[int, int, int], classes: int) -> nn.Module:
    return Classifier(
        in_shape=(1, *box),
        classes=classes,
        channels=CLASSIFIER_CHANNELS,
        strides=(2,) * len(CLASSIFIER_CHANNELS),
        num_res_units=1,
        dropout=0.2,
    )


def build_segmenter(*, lesion_classes: int) -> nn.Module:
    """Background plus one channel per lesion class: every lesion voxel carries its case's class, as
    in the DiffGuard study, so a few hundred volumes give dense supervision, not one label each."""
    return UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1 + lesion_classes,
        channels=SEGMENTER_CHANNELS,
        strides=(2,) * (len(SEGMENTER_CHANNELS) - 1),
        num_res_units=0,  # residual units cost 2.7x the time per volume (measured once on 2 CPU cores)
        dropout=0.1,
    )
