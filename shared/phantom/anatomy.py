"""Normal thoracic anatomy of one phantom patient, painted in patient millimetres.

Every position below is for an average adult and is scaled by the patient's own width, depth and
height, so patients differ in build and organs keep their relations (the aorta stays beside the
spine, the trachea in front of the oesophagus). Painting order matters: later structures cover
earlier ones, as the bones and vessels cover the fat and lungs they sit in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.phantom.canvas import Canvas, Tissue, nominal
from shared.phantom.grid import Capsule, Ellipsoid, Vec3, Window, rotation_z_then_x
from shared.phantom.texture import SmoothField

# Slices of the scan, in average-adult millimetres (z = 0 at the carina).
SCAN_TOP_MM = 150.0
SCAN_BOTTOM_MM = -210.0  # into the upper abdomen, below the costophrenic recesses, as chest protocols do
BODY_HALF_WIDTH_MM = 150.0
BODY_HALF_DEPTH_MM = 105.0


@dataclass(frozen=True)
class Body:
    """The build of one patient."""

    width: float  # scale of x
    depth: float  # scale of y
    height: float  # scale of z
    fat_mm: float  # subcutaneous fat thickness
    contrast: bool

    @staticmethod
    def draw(rng: np.random.Generator, mean_size: float, contrast_rate: float) -> Body:
        size = mean_size * float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.18))
        return Body(
            width=size * float(rng.uniform(0.96, 1.04)),
            depth=size * float(rng.uniform(0.94, 1.06)),
            height=float(np.clip(rng.normal(1.0, 0.05), 0.88, 1.12)),
            fat_mm=float(np.clip(rng.normal(15.0, 6.0) * size**2, 5.0, 35.0)),
            contrast=bool(rng.random() < contrast_rate),
        )

    def p(self, x: float, y: float, z: float) -> Vec3:
        """An average-adult point, moved to this patient."""
        return (x * self.width, y * self.depth, z * self.height)

    @property
    def half_width(self) -> float:
        return BODY_HALF_WIDTH_MM * self.width

    @property
    def half_depth(self) -> float:
        return BODY_HALF_DEPTH_MM * self.depth

    @property
    def scan_range(self) -> tuple[float, float]:
        return SCAN_BOTTOM_MM * self.height, SCAN_TOP_MM * self.height


@dataclass(frozen=True)
class Landmarks:
    """Where the structures that lesions are placed against ended up."""

    cavity_center_y: float
    cavity_half_width: float
    cavity_half_depth: float
    sternum_back_y: float
    vertebra_center_y: float
    vertebra_half_width: float
    aorta_front_y: float  # anterior edge of the ascending aorta / pulmonary trunk
    heart_center: Vec3
    heart_radii: Vec3
    heart_rotation: tuple[Vec3, Vec3, Vec3]
    carina: Vec3
    diaphragm_right_z: float
    diaphragm_left_z: float


def paint_anatomy(
    canvas: Canvas, rng: np.random.Generator, body: Body, before_vessels: Callable[[Landmarks], None]
) -> Landmarks:
    """Paint a whole patient; `before_vessels` adds a lesion after the soft tissues and before the
    great vessels, airways and bones, which then sit on top of it as they would in life."""
    grid = canvas.grid
    full = grid.full()
    c = body.contrast
    fat_texture = SmoothField(rng, grid, 6.0)
    soft_grain = fat_texture.sample(full)  # one texture for fat, muscle and thymus: sampled once

    # Table under the patient, body outline, skin, fat, chest wall muscle.
    table_y = body.half_depth + 12.0
    canvas.paint(
        None,
        150.0,
        Tissue.TABLE,
        window=full,
        mask=(full.y > table_y) & (full.y < table_y + 8) & (np.abs(full.x) < 220),
    )
    a, b = body.half_width, body.half_depth
    canvas.paint(
        None, nominal(Tissue.SKIN, c, rng), Tissue.SKIN, window=full, mask=_ellipse(full, 0, 0, a, b)
    )
    fat_hu = nominal(Tissue.SUBCUTANEOUS_FAT, c, rng) + 6.0 * soft_grain
    canvas.paint(None, fat_hu, Tissue.SUBCUTANEOUS_FAT, window=full, mask=_ellipse(full, 0, 0, a - 2, b - 2))
    wall = body.fat_mm + 2.0
    muscle_hu = nominal(Tissue.MUSCLE, c, rng) + 3.0 * soft_grain
    canvas.paint(None, muscle_hu, Tissue.MUSCLE, window=full, mask=_ellipse(full, 0, 0, a - wall, b - wall))

    # Thoracic cavity: an ellipse inside the chest wall that narrows to the lung apices.
    cy = -6.0 * body.depth
    ca = a - wall - 14.0 * body.width
    cb = b - wall - 16.0 * body.depth
    apex_z = 138.0 * body.height
    taper_z = 80.0 * body.height
    taper = np.sqrt(np.clip(1.0 - ((full.z - taper_z) / (apex_z - taper_z)) ** 2, 0.0, 1.0))
    taper = np.where(full.z < taper_z, 1.0, np.maximum(taper, 1e-3)).astype(np.float32)
    cavity = _ellipse(full, 0, cy, ca * taper, cb * taper)

    # Diaphragm: two domes, the right one higher; below them the upper abdomen.
    dome_r, dome_l = body.p(-70, 0, -118), body.p(70, 0, -132)
    diaphragm = np.minimum(
        dome_r[2] - 45.0 * body.height * (((full.x - dome_r[0]) / 110.0) ** 2 + ((full.y - cy) / 90.0) ** 2),
        dome_l[2] - 45.0 * body.height * (((full.x - dome_l[0]) / 110.0) ** 2 + ((full.y - cy) / 90.0) ** 2),
    )
    diaphragm = np.where(
        full.x < 0,
        np.maximum(diaphragm, dome_r[2] - 60 * body.height),
        np.maximum(diaphragm, dome_l[2] - 60 * body.height),
    )
    above = full.z > diaphragm
    canvas.paint(None, nominal(Tissue.ABDOMEN, c, rng), Tissue.ABDOMEN, window=full, mask=cavity & ~above)

    # Lungs: the cavity above the diaphragm, either side of a central band (the mediastinum).
    # Narrow in front (where the lungs nearly meet behind the sternum), wide at the spine.
    med_half = (24.0 + 12.0 * np.clip((full.y - cy) / cb, -1.0, 1.0)) * body.width
    lung_texture, fine_texture = SmoothField(rng, grid, 9.0), SmoothField(rng, grid, 3.5)
    lung_hu = (
        -850.0 + 22.0 * lung_texture.sample(full) + 12.0 * fine_texture.sample(full) + 0.25 * (full.y - cy)
    )  # dependent (posterior) lung is denser
    lungs = cavity & above & (np.abs(full.x) > med_half)
    canvas.paint(None, lung_hu, Tissue.LUNG, window=full, mask=lungs)
    med_fat_hu = nominal(Tissue.MEDIASTINAL_FAT, c, rng) + 6.0 * soft_grain
    canvas.paint(
        None,
        med_fat_hu,
        Tissue.MEDIASTINAL_FAT,
        window=full,
        mask=cavity & above & (np.abs(full.x) <= med_half),
    )
    _paint_stomach_bubble(canvas, body)
    _paint_lung_trees(canvas, rng, body)

    # Heart in its fat, thymic remnant in the prevascular space, lymph nodes.
    heart_center = body.p(18, -22, -78)
    heart_radii = (62.0 * body.width, 46.0 * body.depth, 50.0 * body.height)
    heart_rot = rotation_z_then_x(np.deg2rad(-30.0), np.deg2rad(15.0))
    fat_radii = (heart_radii[0] + 5, heart_radii[1] + 5, heart_radii[2] + 5)
    canvas.paint(
        Ellipsoid(heart_center, fat_radii, heart_rot),
        med_fat_hu,
        Tissue.MEDIASTINAL_FAT,
        only=(Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.AIRWAY, Tissue.MEDIASTINAL_FAT),
    )
    canvas.paint(
        Ellipsoid(heart_center, heart_radii, heart_rot),
        nominal(Tissue.HEART, c, rng),
        Tissue.HEART,
        only=(Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.AIRWAY),
    )
    chambers = tuple(0.72 * r for r in heart_radii)
    blood = nominal(Tissue.BLOOD, c, rng)
    canvas.paint(
        Ellipsoid(heart_center, (chambers[0], chambers[1], chambers[2]), heart_rot),
        blood,
        Tissue.BLOOD,
        only=(Tissue.HEART,),
    )
    thymus_hu = (-75.0 + 25.0 * np.abs(soft_grain)).astype(np.float32)
    canvas.paint(
        Ellipsoid(body.p(0, -62, 28), (24.0 * body.width, 9.0 * body.depth, 30.0 * body.height)),
        thymus_hu,
        Tissue.THYMUS,
        only=(Tissue.MEDIASTINAL_FAT,),
    )
    for station in ((-16, 2, 26), (16, -6, 22), (0, 14, -22), (-40, 2, -14), (42, 4, -16)):
        radius = float(rng.uniform(2.5, 5.0))
        canvas.paint(
            Ellipsoid(body.p(*station), (radius, radius * 0.8, radius * 1.3)),
            nominal(Tissue.LYMPH_NODE, c, rng),
            Tissue.LYMPH_NODE,
            only=(Tissue.MEDIASTINAL_FAT, Tissue.LUNG),
        )

    vertebra_y = cy + cb - 14.0 * body.depth
    sternum_y = cy - cb + 3.0
    carina = body.p(0, 6, 0)
    landmarks = Landmarks(
        cavity_center_y=cy,
        cavity_half_width=ca,
        cavity_half_depth=cb,
        sternum_back_y=sternum_y + 7.0,
        vertebra_center_y=vertebra_y,
        vertebra_half_width=18.0 * body.width,
        aorta_front_y=-28.0 * body.depth - 14.5 * body.width,
        heart_center=heart_center,
        heart_radii=heart_radii,
        heart_rotation=heart_rot,
        carina=carina,
        diaphragm_right_z=dome_r[2],
        diaphragm_left_z=dome_l[2],
    )
    before_vessels(landmarks)

    # Great vessels (contrast-filled when enhanced), airways, oesophagus.
    _tube(canvas, [body.p(20, -34, -40), body.p(16, -18, -4)], 13.0 * body.width, blood)  # pulmonary trunk
    _tube(canvas, [body.p(16, -18, -4), body.p(48, 2, -10)], 9.5 * body.width, blood)  # left pulmonary artery
    _tube(
        canvas, [body.p(16, -18, -4), body.p(-44, -4, -14)], 9.5 * body.width, blood
    )  # right pulmonary artery
    aorta = [
        body.p(8, -24, -45),
        body.p(4, -28, 18),
        body.p(12, -14, 40),
        body.p(22, 10, 42),
        body.p(24, 26, 26),
        body.p(22, 34, -40),
        body.p(16, 36, -215),
    ]
    _tube(canvas, aorta[:3], 14.5 * body.width, blood)
    _tube(canvas, aorta[2:5], 13.0 * body.width, blood)
    _tube(canvas, aorta[4:], 12.0 * body.width, blood)
    _tube(
        canvas, [body.p(-24, -20, 150), body.p(-24, -18, -30)], 9.0 * body.width, blood
    )  # superior vena cava
    for top, bottom in (
        ((-26, -8, 150), (0, -18, 40)),
        ((-4, -6, 150), (10, -14, 42)),
        ((26, 2, 150), (18, -6, 44)),
    ):
        _tube(canvas, [body.p(*top), body.p(*bottom)], 5.5 * body.width, blood)  # arch branches
    airway_wall = float(rng.uniform(30, 50))
    for path, radius in (
        ([body.p(0, 2, 160), carina], 9.0),
        ([carina, body.p(-36, 9, -22)], 6.5),
        ([carina, body.p(42, 11, -34)], 6.0),
    ):
        _tube(canvas, path, radius + 2.0, airway_wall, Tissue.AIRWAY_WALL)
        _tube(canvas, path, radius, -1000.0, Tissue.AIRWAY)
    oesophagus = [body.p(6, 22, 160), body.p(10, 24, -60), body.p(30, 20, -215)]
    _tube(canvas, oesophagus, 8.0 * body.width, nominal(Tissue.OESOPHAGUS, c, rng), Tissue.OESOPHAGUS)
    if rng.random() < 0.5:
        _tube(canvas, oesophagus, 2.5, -1000.0, Tissue.AIRWAY)

    # Spine, sternum, ribs.
    _paint_spine(canvas, rng, body, vertebra_y, landmarks.vertebra_half_width)
    _paint_sternum(canvas, rng, body, sternum_y)
    _paint_ribs(canvas, rng, body, cy, ca, cb)
    return landmarks


def _ellipse(w: Window, cx: float, cy: float, a: float | np.ndarray, b: float | np.ndarray) -> np.ndarray:
    return ((w.x - cx) / a) ** 2 + ((w.y - cy) / b) ** 2 <= 1.0


def _tube(
    canvas: Canvas, points: list[Vec3], radius: float, hu: float, tissue: Tissue = Tissue.BLOOD
) -> None:
    for p0, p1 in itertools.pairwise(points):
        canvas.paint(Capsule(p0, p1, radius, radius), hu, tissue)


def _paint_stomach_bubble(canvas: Canvas, body: Body) -> None:
    # Gas in the gastric fundus under the left dome: a classic pitfall for "find the lungs" heuristics.
    canvas.paint(
        Ellipsoid(body.p(55, -20, -160), (30.0, 22.0, 14.0)), -1000.0, Tissue.AIRWAY, only=(Tissue.ABDOMEN,)
    )


def _paint_lung_trees(canvas: Canvas, rng: np.random.Generator, body: Body) -> None:
    """Bronchovascular branches from each hilum, clipped to the lung."""
    hu = nominal(Tissue.LUNG_VESSEL, body.contrast, rng)
    for hilum, side in ((body.p(-48, 0, -14), -1.0), (body.p(50, 2, -16), 1.0)):
        stack: list[tuple[Vec3, np.ndarray, float, float, int]] = []
        for _ in range(10):
            direction = np.array(
                [side * rng.uniform(0.4, 1.0), rng.uniform(-0.6, 0.6), rng.uniform(-1.0, 1.0)]
            )
            stack.append((hilum, direction / np.linalg.norm(direction), 4.5, 50.0, 0))
        while stack:
            start, direction, radius, length, generation = stack.pop()
            end_arr = np.asarray(start) + direction * length * body.width
            end = (float(end_arr[0]), float(end_arr[1]), float(end_arr[2]))
            canvas.paint(
                Capsule(start, end, radius, radius * 0.8), hu, Tissue.LUNG_VESSEL, only=(Tissue.LUNG,)
            )
            if generation < 4:
                for _ in range(2):
                    child = direction + rng.normal(0.0, 0.45, size=3)
                    stack.append(
                        (end, child / np.linalg.norm(child), radius * 0.7, length * 0.72, generation + 1)
                    )


def _paint_spine(
    canvas: Canvas, rng: np.random.Generator, body: Body, center_y: float, half_width: float
) -> None:
    grid = canvas.grid
    lo, hi = body.scan_range
    w = grid.window((-60.0 * body.width, center_y - 25, lo - 5), (60.0 * body.width, center_y + 80, hi + 5))
    if w is None:
        return
    half_depth = half_width * 0.85
    level = 27.0 * body.height  # one vertebra plus its disc
    phase = float(rng.uniform(0, level))
    in_disc = np.mod(w.z + phase, level) < 5.5 * body.height
    body_outer = ((w.x / half_width) ** 2 + ((w.y - center_y) / half_depth) ** 2) <= 1.0
    body_inner = ((w.x / (half_width - 2.5)) ** 2 + ((w.y - center_y) / (half_depth - 2.5)) ** 2) <= 1.0
    cortical, cancellous = (
        nominal(Tissue.BONE_CORTICAL, False, rng),
        nominal(Tissue.BONE_CANCELLOUS, False, rng),
    )
    canal_y = center_y + half_depth + 11.0
    arch = (w.x**2 + (w.y - canal_y) ** 2) <= 14.0**2
    spinous = (np.abs(w.x) < 4.0) & (w.y > canal_y) & (w.y < canal_y + 38.0 * body.depth)
    transverse = (np.abs(w.y - canal_y + 3.0) < 4.0) & (np.abs(w.x) < 28.0 * body.width)
    canvas.paint(
        None, cortical, Tissue.BONE_CORTICAL, window=w, mask=(arch | spinous | transverse) & ~in_disc
    )
    canvas.paint(
        None,
        nominal(Tissue.SPINAL_CANAL, False, rng),
        Tissue.SPINAL_CANAL,
        window=w,
        mask=(w.x**2 + (w.y - canal_y) ** 2) <= 8.5**2,
    )
    canvas.paint(None, cortical, Tissue.BONE_CORTICAL, window=w, mask=body_outer & ~in_disc)
    canvas.paint(None, cancellous, Tissue.BONE_CANCELLOUS, window=w, mask=body_inner & ~in_disc)
    canvas.paint(None, nominal(Tissue.DISC, False, rng), Tissue.DISC, window=w, mask=body_outer & in_disc)


def _paint_sternum(canvas: Canvas, rng: np.random.Generator, body: Body, center_y: float) -> None:
    lo = (-20.0 * body.width, center_y - 10, -115.0 * body.height)
    hi = (20.0 * body.width, center_y + 10, 62.0 * body.height)
    w = canvas.grid.window(lo, hi)
    if w is None:
        return
    half_width = np.where(w.z > 38.0 * body.height, 22.0, 14.0) * body.width  # manubrium is wider
    outer = ((w.x / half_width) ** 2 + ((w.y - center_y) / 6.5) ** 2) <= 1.0
    inner = ((w.x / (half_width - 2.0)) ** 2 + ((w.y - center_y) / 4.5) ** 2) <= 1.0
    canvas.paint(None, nominal(Tissue.BONE_CORTICAL, False, rng), Tissue.BONE_CORTICAL, window=w, mask=outer)
    canvas.paint(
        None, nominal(Tissue.BONE_CANCELLOUS, False, rng), Tissue.BONE_CANCELLOUS, window=w, mask=inner
    )


def _paint_ribs(
    canvas: Canvas, rng: np.random.Generator, body: Body, cy: float, ca: float, cb: float
) -> None:
    """Twelve pairs of ribs in the chest wall, sloping down from the spine to the front."""
    grid = canvas.grid
    full = grid.full()
    rho = np.sqrt((full.x / (ca + 6.0)) ** 2 + ((full.y - cy) / (cb + 6.0)) ** 2)
    ring = np.abs(rho - 1.0) * min(ca, cb) < 3.5
    ring &= ~((np.abs(full.x) < 32.0 * body.width) & (full.y < cy))  # costal cartilage gap at the sternum
    ring &= ~(np.abs(full.x) < 30.0 * body.width)  # the spine, not ribs, sits in the midline behind
    rows, cols = np.nonzero(ring[0])
    if rows.size == 0:
        return
    y = grid.axis(1)[rows]
    posterior_y = cy + cb
    spacing, first = 24.0 * body.height, 122.0 * body.height
    slope = 0.55
    hu = nominal(Tissue.BONE_CANCELLOUS, False, rng) + 150.0
    z_axis = grid.axis(2)
    for k, z in enumerate(z_axis):
        u = z + slope * (posterior_y - y)  # height at the spine of the rib passing here
        index = np.round((first - u) / spacing)
        hit = (index >= 0) & (index < 12) & (np.abs(first - index * spacing - u) < 3.5 * body.height)
        if hit.any():
            canvas.hu[k, rows[hit], cols[hit]] = hu
            canvas.tissue[k, rows[hit], cols[hit]] = int(Tissue.BONE_CANCELLOUS)
