"""The lesion of each class: where it sits (ITMIG compartment), how big it is, what it is made of.

Figures from DESIGN.md and the series it cites. The classes overlap on purpose, as they do in life:
thymomas can have cystic change, bronchogenic cysts can be protein-dense (30-100 HU) like solid
tissue, teratomas can be purely cystic, neurogenic tumours sit at the attenuation of a thymoma,
and every size range overlaps the others. A classifier has to use location, shape, margin and
texture together, and still lands below perfect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from shared.classes import (
    BENIGN_CYST,
    GERM_CELL_TUMOUR,
    NEUROGENIC_TUMOUR,
    NORMAL,
    THYMIC_CARCINOMA,
    THYMOMA,
)
from shared.phantom.anatomy import Body, Landmarks
from shared.phantom.canvas import Canvas, Tissue
from shared.phantom.grid import Capsule, Ellipsoid, Vec3, random_rotation, random_unit
from shared.phantom.texture import SmoothField

PREVASCULAR, VISCERAL, PARAVERTEBRAL = "prevascular", "visceral", "paravertebral"

# Largest diameter, mm. Germ cell tumours reach 25 cm in life; the phantom's chest holds 16.
SIZE_RANGE_MM: dict[str, tuple[float, float]] = {
    THYMOMA: (30.0, 100.0),
    THYMIC_CARCINOMA: (40.0, 120.0),
    GERM_CELL_TUMOUR: (30.0, 160.0),
    NEUROGENIC_TUMOUR: (20.0, 80.0),
    BENIGN_CYST: (20.0, 80.0),
}

# What a lesion may grow into: it pushes lung and fat aside but never enters the chest wall or heart.
SOFT = (
    Tissue.LUNG,
    Tissue.LUNG_VESSEL,
    Tissue.AIRWAY,
    Tissue.MEDIASTINAL_FAT,
    Tissue.THYMUS,
    Tissue.LYMPH_NODE,
)


@dataclass
class LesionInfo:
    """What was drawn; goes to labels.csv (no patient data, only phantom facts)."""

    label: str
    subtype: str = ""
    compartment: str = ""
    center: Vec3 = (0.0, 0.0, 0.0)
    diameter_mm: float = 0.0
    features: list[str] = field(default_factory=list)


def paint_lesion(
    canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks, label: str
) -> LesionInfo:
    painter = _PAINTERS.get(label)
    if painter is None:
        raise ValueError(f"the phantom has no lesion model for class {label!r}")
    return painter(canvas, rng, body, lm)


def _diameter(rng: np.random.Generator, label: str) -> float:
    lo, hi = SIZE_RANGE_MM[label]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # small lesions are more common


def _bumps(
    rng: np.random.Generator, count: int, amplitude: tuple[float, float], frequency: tuple[float, float]
):
    return tuple(
        (
            float(rng.uniform(*amplitude)),
            float(rng.uniform(*frequency)),
            random_unit(rng),
            float(rng.uniform(0, 6.3)),
        )
        for _ in range(count)
    )


def _prevascular_center(rng: np.random.Generator, body: Body, lm: Landmarks, ry: float) -> Vec3:
    x = float(rng.normal(4.0, 12.0)) * body.width
    y = min(lm.aorta_front_y - 0.45 * ry, lm.aorta_front_y - 6.0)
    z = float(rng.uniform(-30.0, 38.0)) * body.height
    return (x, y, z)


def _radii(d: float, rng: np.random.Generator, flatness: tuple[float, float] = (0.7, 0.95)) -> Vec3:
    r = d / 2.0
    return (r, r * float(rng.uniform(*flatness)), r * float(rng.uniform(*flatness)))


def _contrast_gain(body: Body, rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi)) if body.contrast else 0.0


def _paint_body(canvas: Canvas, shape: Ellipsoid, hu: float, texture: SmoothField, sigma: float) -> int:
    lo, hi = shape.bounds()
    w = canvas.grid.window(lo, hi)
    if w is None:
        return 0
    return canvas.paint(
        None, hu + sigma * texture.sample(w), Tissue.LESION, window=w, mask=shape.inside(w), only=SOFT
    )


def _inside_point(rng: np.random.Generator, center: Vec3, radii: Vec3, reach: float = 0.6) -> Vec3:
    u = np.asarray(random_unit(rng)) * rng.uniform(0, reach)
    return (center[0] + u[0] * radii[0], center[1] + u[1] * radii[1], center[2] + u[2] * radii[2])


def _calcifications(
    canvas: Canvas, rng: np.random.Generator, center: Vec3, radii: Vec3, count: int, hu: tuple[float, float]
) -> None:
    for _ in range(count):
        r = float(rng.uniform(1.5, 4.5))
        canvas.paint(
            Ellipsoid(_inside_point(rng, center, radii), (r, r, r)),
            float(rng.uniform(*hu)),
            Tissue.LESION,
            only=(Tissue.LESION,),
        )


def _thymoma(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    d = _diameter(rng, THYMOMA)
    radii = _radii(d, rng)
    center = _prevascular_center(rng, body, lm, radii[1])
    lobulated = rng.random() < 0.4
    bumps = (
        _bumps(rng, 3, (0.06, 0.14), (2.5, 5.0)) if lobulated else _bumps(rng, 2, (0.01, 0.04), (2.0, 3.0))
    )
    shape = Ellipsoid(center, radii, random_rotation(rng), bumps)
    hu = float(rng.uniform(28, 52)) + _contrast_gain(body, rng, 15, 35)
    _paint_body(canvas, shape, hu, SmoothField(rng, canvas.grid, 5.0), 4.0)
    info = LesionInfo(THYMOMA, "lobulated" if lobulated else "smooth", PREVASCULAR, center, d)
    if rng.random() < 0.25:
        _calcifications(canvas, rng, center, radii, int(rng.integers(1, 4)), (150, 600))
        info.features.append("calcification")
    if rng.random() < 0.15:  # cystic change: a thymoma that looks partly like a cyst
        r = tuple(0.4 * x for x in radii)
        canvas.paint(
            Ellipsoid(_inside_point(rng, center, radii, 0.3), (r[0], r[1], r[2])),
            float(rng.uniform(5, 20)),
            Tissue.LESION,
            only=(Tissue.LESION,),
        )
        info.features.append("cystic_change")
    return info


def _thymic_carcinoma(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    d = _diameter(rng, THYMIC_CARCINOMA)
    radii = _radii(d, rng, (0.65, 0.9))
    center = _prevascular_center(rng, body, lm, radii[1])
    shape = Ellipsoid(center, radii, random_rotation(rng), _bumps(rng, 7, (0.05, 0.14), (6.0, 12.0)))
    lo, hi = shape.bounds()
    w = canvas.grid.window(lo, hi)
    info = LesionInfo(THYMIC_CARCINOMA, "infiltrative", PREVASCULAR, center, d)
    if w is None:
        return info
    texture = SmoothField(rng, canvas.grid, 8.0).sample(w)
    hu = float(rng.uniform(25, 50)) + _contrast_gain(body, rng, 10, 30) + 9.0 * texture
    if rng.random() < 0.6:  # necrosis: the low-attenuation centre of fast-growing tumour
        hu = np.where(texture > 0.7, float(rng.uniform(5, 20)), hu)
        info.features.append("necrosis")
    canvas.paint(None, hu.astype(np.float32), Tissue.LESION, window=w, mask=shape.inside(w), only=SOFT)
    if rng.random() < 0.1:
        _calcifications(canvas, rng, center, radii, 1, (150, 400))
        info.features.append("calcification")
    if rng.random() < 0.7:
        _enlarged_nodes(canvas, rng, body, int(rng.integers(2, 5)))
        info.features.append("lymphadenopathy")
    if rng.random() < 0.25:
        _pleural_effusion(canvas, rng, body, lm)
        info.features.append("pleural_effusion")
    if rng.random() < 0.15:
        _pericardial_effusion(canvas, rng, lm)
        info.features.append("pericardial_effusion")
    return info


def _germ_cell_tumour(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    d = _diameter(rng, GERM_CELL_TUMOUR)
    radii = _radii(d, rng, (0.7, 0.95))
    center = _prevascular_center(rng, body, lm, radii[1])
    rotation = random_rotation(rng)
    shape = Ellipsoid(center, radii, rotation, _bumps(rng, 3, (0.03, 0.1), (2.5, 5.0)))
    wall_hu = float(rng.uniform(35, 55)) + _contrast_gain(body, rng, 10, 25)
    _paint_body(canvas, shape, wall_hu, SmoothField(rng, canvas.grid, 5.0), 6.0)
    info = LesionInfo(GERM_CELL_TUMOUR, "teratoma", PREVASCULAR, center, d)
    inner = (radii[0] - 2.5, radii[1] - 2.5, radii[2] - 2.5)
    if rng.random() < 0.15:  # purely cystic: a thin wall round fluid, like a benign cyst
        canvas.paint(
            Ellipsoid(center, inner, rotation),
            float(rng.uniform(0, 20)),
            Tissue.LESION,
            only=(Tissue.LESION,),
        )
        info.subtype = "cystic_teratoma"
        info.features.append("fluid")
        return info
    cavities: list[tuple[Vec3, Vec3]] = []
    if rng.random() < 0.88:
        for _ in range(int(rng.integers(1, 4))):
            scale = float(rng.uniform(0.3, 0.6))
            cr = (inner[0] * scale, inner[1] * scale, inner[2] * scale)
            cc = _inside_point(rng, center, radii, 0.45)
            canvas.paint(Ellipsoid(cc, cr), float(rng.uniform(0, 20)), Tissue.LESION, only=(Tissue.LESION,))
            cavities.append((cc, cr))
        info.features.append("fluid")
    if rng.random() < 0.76:
        for _ in range(int(rng.integers(1, 3))):
            r = float(rng.uniform(0.15, 0.3)) * radii[0]
            canvas.paint(
                Ellipsoid(_inside_point(rng, center, radii, 0.5), (r, r * 0.8, r)),
                float(rng.uniform(-110, -60)),
                Tissue.LESION,
                only=(Tissue.LESION,),
            )
        info.features.append("fat")
    if rng.random() < 0.53:
        _calcifications(canvas, rng, center, radii, int(rng.integers(1, 4)), (300, 1000))
        info.features.append("calcification")
    if cavities and rng.random() < 0.11:  # fat floats on fluid: anterior (up, for a supine patient)
        (cc, cr) = max(cavities, key=lambda c: c[1][0])
        lo, hi = (cc[0] - cr[0], cc[1] - cr[1], cc[2] - cr[2]), (cc[0] + cr[0], cc[1], cc[2] + cr[2])
        w = canvas.grid.window(lo, hi)
        if w is not None:
            canvas.paint(
                None, -95.0, Tissue.LESION, window=w, mask=Ellipsoid(cc, cr).inside(w), only=(Tissue.LESION,)
            )
        info.features.append("fat_fluid_level")
    return info


def _neurogenic_tumour(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    d = _diameter(rng, NEUROGENIC_TUMOUR)
    elongated = rng.random() < 0.25  # sympathetic-chain type: spans several vertebral levels
    side = -1.0 if rng.random() < 0.5 else 1.0
    if elongated:
        r = max(d, 55.0) / 2.0  # spans two or more vertebral levels
        radii = (float(rng.uniform(8.0, 14.0)), float(rng.uniform(8.0, 14.0)), r)
    else:
        r = d / 2.0
        radii = (
            r * float(rng.uniform(0.85, 1.0)),
            r * float(rng.uniform(0.85, 1.0)),
            r * float(rng.uniform(0.8, 1.0)),
        )
    x = side * (lm.vertebra_half_width + 0.75 * radii[0] + 4.0)
    y = lm.vertebra_center_y + 6.0 + 0.2 * radii[1]
    # Most arise in the upper and middle posterior mediastinum (intercostal and sympathetic nerves).
    z = float(rng.uniform(-60.0, 50.0)) * body.height
    center = (x, y, z)
    shape = Ellipsoid(center, radii, None, _bumps(rng, 2, (0.01, 0.04), (2.0, 3.0)))
    hu = float(rng.uniform(18, 42)) + _contrast_gain(body, rng, 5, 20)
    _paint_body(canvas, shape, hu, SmoothField(rng, canvas.grid, 5.0), 3.0)
    info = LesionInfo(
        NEUROGENIC_TUMOUR,
        "sympathetic_chain" if elongated else "nerve_sheath",
        PARAVERTEBRAL,
        center,
        2.0 * max(radii),
    )
    if rng.random() < 0.15:  # dumbbell: grows through the neural foramen towards the canal
        canal = (side * 6.0, lm.vertebra_center_y + 26.0, z)
        canvas.paint(
            Capsule(center, canal, 0.3 * radii[0], 5.0), hu, Tissue.LESION, only=(*SOFT, Tissue.MUSCLE)
        )
        info.features.append("dumbbell")
    if elongated and rng.random() < 0.2:
        _calcifications(canvas, rng, center, radii, 2, (150, 400))
        info.features.append("calcification")
    return info


def _benign_cyst(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    d = _diameter(rng, BENIGN_CYST)
    radii = _radii(d, rng, (0.8, 1.0))
    kind = rng.choice(["pericardial", "bronchogenic", "thymic"], p=[0.4, 0.4, 0.2])
    if kind == "pericardial":
        side = -1.0 if rng.random() < 0.77 else 1.0  # right cardiophrenic angle in about 77%
        hc, hr = lm.heart_center, lm.heart_radii
        center = (
            hc[0] + side * 0.8 * hr[0] + side * 0.3 * radii[0] - (10.0 if side > 0 else 0.0),
            hc[1] - 0.3 * hr[1],
            hc[2] - 0.55 * hr[2] + 0.2 * radii[2],
        )
        compartment = VISCERAL
    elif kind == "bronchogenic":
        cz = lm.carina
        center = (
            cz[0] + float(rng.normal(0, 5)),
            cz[1] + 8.0 + 0.2 * radii[1],
            cz[2] - 10.0 - 0.5 * radii[2],
        )
        compartment = VISCERAL
    else:
        center = _prevascular_center(rng, body, lm, radii[1])
        compartment = PREVASCULAR
    shape = Ellipsoid(center, radii, random_rotation(rng), _bumps(rng, 1, (0.0, 0.02), (2.0, 3.0)))
    protein = kind == "bronchogenic" and rng.random() < 0.3
    content = float(rng.uniform(25, 100)) if protein else float(rng.uniform(0, 20))
    _paint_body(
        canvas, shape, float(rng.uniform(30, 50)), SmoothField(rng, canvas.grid, 5.0), 1.0
    )  # thin wall
    inner = Ellipsoid(center, (radii[0] - 1.5, radii[1] - 1.5, radii[2] - 1.5), shape.rotation, shape.bumps)
    canvas.paint(inner, content, Tissue.LESION, only=(Tissue.LESION,))
    info = LesionInfo(BENIGN_CYST, str(kind), compartment, center, d)
    if protein:
        info.features.append("proteinaceous")
    return info


def _enlarged_nodes(canvas: Canvas, rng: np.random.Generator, body: Body, count: int) -> None:
    stations = [(-18, 2, 24), (16, -6, 22), (0, 16, -24), (-42, 2, -14), (44, 4, -16), (-10, -40, 40)]
    for n in rng.permutation(len(stations))[:count]:
        r = float(rng.uniform(6.0, 12.0))
        canvas.paint(
            Ellipsoid(body.p(*stations[n]), (r, r * 0.85, r * 1.2)),
            float(rng.uniform(35, 55)),
            Tissue.LYMPH_NODE,
            only=(Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.LUNG_VESSEL, Tissue.THYMUS),
        )


def _pleural_effusion(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> None:
    side = -1.0 if rng.random() < 0.5 else 1.0
    depth = float(rng.uniform(15.0, 45.0))
    base_z = lm.diaphragm_right_z if side < 0 else lm.diaphragm_left_z
    lo = (min(0.0, side * 200.0), lm.cavity_center_y + lm.cavity_half_depth - depth - 40.0, base_z - 80.0)
    hi = (max(0.0, side * 200.0), lm.cavity_center_y + lm.cavity_half_depth + 5.0, base_z + 90.0)
    w = canvas.grid.window(lo, hi)
    if w is None:
        return
    level = lm.cavity_center_y + lm.cavity_half_depth - depth + 0.15 * (w.z - base_z)
    canvas.paint(
        None,
        float(rng.uniform(0, 20)),
        Tissue.EFFUSION,
        window=w,
        mask=(w.y > level) & (side * w.x > 0),
        only=(Tissue.LUNG, Tissue.LUNG_VESSEL),
    )


def _pericardial_effusion(canvas: Canvas, rng: np.random.Generator, lm: Landmarks) -> None:
    thickness = float(rng.uniform(5.0, 12.0))
    radii = tuple(r + thickness for r in lm.heart_radii)
    canvas.paint(
        Ellipsoid(lm.heart_center, (radii[0], radii[1], radii[2]), lm.heart_rotation),
        float(rng.uniform(5, 20)),
        Tissue.EFFUSION,
        only=(Tissue.MEDIASTINAL_FAT, Tissue.LUNG, Tissue.LUNG_VESSEL),
    )


def _normal(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    return LesionInfo(NORMAL, "fatty_thymic_remnant")


# What a public chest CT collection holds: lung nodules with their masks, sometimes enlarged
# mediastinal nodes (not masked), and never a mediastinal mass of the six classes. Not a class:
# a public patient has no label, and its mask teaches only how a lesion and its mask go together.
PUBLIC_FINDINGS = "public_findings"


def _public_findings(canvas: Canvas, rng: np.random.Generator, body: Body, lm: Landmarks) -> LesionInfo:
    info = LesionInfo(PUBLIC_FINDINGS, "lung_nodules")
    count = int(rng.choice([0, 1, 1, 2, 2, 3]))
    low = max(lm.diaphragm_right_z, lm.diaphragm_left_z) + 25.0
    for _ in range(count):
        side = -1.0 if rng.random() < 0.5 else 1.0
        center = (
            side * float(rng.uniform(0.45, 0.8)) * lm.cavity_half_width,
            lm.cavity_center_y + float(rng.uniform(-0.5, 0.6)) * lm.cavity_half_depth,
            float(rng.uniform(low, lm.carina[2] + 70.0 * body.height)),
        )
        r = float(rng.uniform(3.0, 9.0))  # up to 18 mm across: below the smallest mass of any class
        canvas.paint(
            Ellipsoid(center, (r, r * float(rng.uniform(0.8, 1.0)), r * float(rng.uniform(0.8, 1.1)))),
            float(rng.uniform(20, 60)),
            Tissue.LESION,
            only=(Tissue.LUNG, Tissue.LUNG_VESSEL),
        )
        info.diameter_mm = max(info.diameter_mm, 2 * r)
    if rng.random() < 0.3:
        _enlarged_nodes(canvas, rng, body, int(rng.integers(1, 4)))
        info.features.append("enlarged_nodes")
    return info


_PAINTERS: dict[str, Callable[[Canvas, np.random.Generator, Body, Landmarks], LesionInfo]] = {
    NORMAL: _normal,
    THYMOMA: _thymoma,
    THYMIC_CARCINOMA: _thymic_carcinoma,
    GERM_CELL_TUMOUR: _germ_cell_tumour,
    NEUROGENIC_TUMOUR: _neurogenic_tumour,
    BENIGN_CYST: _benign_cyst,
    PUBLIC_FINDINGS: _public_findings,
}
