"""Every view follows radiological convention: the patient's right on the image's left."""

import numpy as np

from shared.three_views import axial, coronal, sagittal


def test_views_of_a_ras_box_are_seen_from_the_feet_the_front_and_the_left() -> None:
    box = np.zeros((10, 12, 14), np.float32)  # x towards the patient's right, y anterior, z superior
    box[9, 6, 7] = 1  # far right
    box[5, 11, 7] = 2  # most anterior
    box[5, 6, 13] = 3  # highest
    a = axial(box, 7)
    assert a.shape == (12, 10)
    assert np.argwhere(a == 1)[0].tolist() == [5, 0]  # right on the image's left
    assert np.argwhere(a == 2)[0].tolist() == [0, 4]  # anterior at the top
    c = coronal(box, 6)
    assert np.argwhere(c == 1)[0].tolist() == [6, 0] and np.argwhere(c == 3)[0].tolist() == [0, 4]
    s = sagittal(box, 5)
    assert np.argwhere(s == 2)[0].tolist() == [6, 0]  # anterior on the left
    assert np.argwhere(s == 3)[0].tolist() == [0, 5]  # head at the top
