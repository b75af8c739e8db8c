"""Voxel grids in patient coordinates and the shapes painted onto them.

Coordinates are DICOM patient coordinates (LPS) in millimetres: x grows to the patient's left,
y to the back, z to the head; z = 0 is the carina. Arrays are indexed [k, i, j] = [slice, row,
column], with slice k at z0 + k*dz (feet first), row i at y0 + i*dy and column j at x0 + j*dx.

A shape knows its bounding box and answers "which voxels of this window are inside me?", so
painting costs work in proportion to the shape's size, not the volume's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

Vec3 = tuple[float, float, float]
BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class Grid:
    shape: tuple[int, int, int]  # (slices, rows, columns)
    origin: Vec3  # (x, y, z) of voxel [0, 0, 0]'s centre
    spacing: Vec3  # (dx, dy, dz)

    def axis(self, n: int) -> FloatArray:
        """Coordinates along x (n=0), y (n=1) or z (n=2)."""
        count = self.shape[2 - n]
        return (self.origin[n] + self.spacing[n] * np.arange(count)).astype(np.float32)

    def window(self, lo: Vec3, hi: Vec3) -> Window | None:
        """The sub-grid covering the box [lo, hi] (mm), or None when it misses the grid."""
        index: list[slice] = []
        for n in (2, 1, 0):  # array axes are z, y, x
            count = self.shape[2 - n]
            first = int(np.floor((lo[n] - self.origin[n]) / self.spacing[n]))
            last = int(np.ceil((hi[n] - self.origin[n]) / self.spacing[n]))
            first, last = max(first, 0), min(last + 1, count)
            if first >= last:
                return None
            index.append(slice(first, last))
        return Window(self, (index[0], index[1], index[2]))

    def full(self) -> Window:
        return Window(self, (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2])))


@dataclass(frozen=True)
class Window:
    grid: Grid
    index: tuple[slice, slice, slice]

    @property
    def z(self) -> FloatArray:
        return self.grid.axis(2)[self.index[0]][:, None, None]

    @property
    def y(self) -> FloatArray:
        return self.grid.axis(1)[self.index[1]][None, :, None]

    @property
    def x(self) -> FloatArray:
        return self.grid.axis(0)[self.index[2]][None, None, :]

    @property
    def shape(self) -> tuple[int, int, int]:
        return (
            self.index[0].stop - self.index[0].start,
            self.index[1].stop - self.index[1].start,
            self.index[2].stop - self.index[2].start,
        )


class Shape(Protocol):
    def bounds(self) -> tuple[Vec3, Vec3]: ...

    def inside(self, w: Window) -> BoolArray: ...


@dataclass(frozen=True)
class Ellipsoid:
    """An ellipsoid, optionally rotated, with an optional bumpy surface.

    `bumps` are (amplitude, frequency, direction, phase): the surface radius in direction u is
    scaled by 1 + sum(a * sin(f * u.n + phase)), which gives lobulated (few, large bumps) or
    irregular, infiltrative (many, sharp bumps) margins from one formula.
    """

    center: Vec3
    radii: Vec3
    rotation: tuple[Vec3, Vec3, Vec3] | None = None  # rows: the ellipsoid's axes in patient space
    bumps: tuple[tuple[float, float, Vec3, float], ...] = ()

    def bounds(self) -> tuple[Vec3, Vec3]:
        reach = max(self.radii) * (1.0 + sum(abs(b[0]) for b in self.bumps))
        c = self.center
        return (c[0] - reach, c[1] - reach, c[2] - reach), (c[0] + reach, c[1] + reach, c[2] + reach)

    def inside(self, w: Window) -> BoolArray:
        dx, dy, dz = w.x - self.center[0], w.y - self.center[1], w.z - self.center[2]
        if self.rotation is None:
            u, v, t = dx, dy, dz
        else:
            (r0, r1, r2) = self.rotation
            u = r0[0] * dx + r0[1] * dy + r0[2] * dz
            v = r1[0] * dx + r1[1] * dy + r1[2] * dz
            t = r2[0] * dx + r2[1] * dy + r2[2] * dz
        u, v, t = u / self.radii[0], v / self.radii[1], t / self.radii[2]
        rho = np.sqrt(u * u + v * v + t * t)
        if not self.bumps:
            return np.broadcast_to(rho <= 1.0, w.shape)
        safe = np.maximum(rho, 1e-6)
        surface = np.ones_like(rho)
        for amplitude, frequency, n, phase in self.bumps:
            surface = surface + amplitude * np.sin(
                frequency * (u * n[0] + v * n[1] + t * n[2]) / safe + phase
            )
        return np.broadcast_to(rho <= surface, w.shape)


@dataclass(frozen=True)
class Capsule:
    """A tube between two points whose radius tapers linearly from r0 to r1."""

    p0: Vec3
    p1: Vec3
    r0: float
    r1: float

    def bounds(self) -> tuple[Vec3, Vec3]:
        r = max(self.r0, self.r1)
        lo = tuple(min(a, b) - r for a, b in zip(self.p0, self.p1, strict=True))
        hi = tuple(max(a, b) + r for a, b in zip(self.p0, self.p1, strict=True))
        return (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])

    def inside(self, w: Window) -> BoolArray:
        d = np.subtract(self.p1, self.p0, dtype=np.float64)
        length2 = float(d @ d) or 1e-9
        px, py, pz = w.x - self.p0[0], w.y - self.p0[1], w.z - self.p0[2]
        s = np.clip((px * d[0] + py * d[1] + pz * d[2]) / length2, 0.0, 1.0)
        ex, ey, ez = px - s * d[0], py - s * d[1], pz - s * d[2]
        radius = self.r0 + (self.r1 - self.r0) * s
        return np.broadcast_to(ex * ex + ey * ey + ez * ez <= radius * radius, w.shape)


def rotation_z_then_x(angle_z: float, angle_x: float) -> tuple[Vec3, Vec3, Vec3]:
    """Rows of R = Rx @ Rz: axes of a shape turned by angle_z about z, then tilted by angle_x."""
    cz, sz, cx, sx = np.cos(angle_z), np.sin(angle_z), np.cos(angle_x), np.sin(angle_x)
    rz = np.array([[cz, sz, 0.0], [-sz, cz, 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, sx], [0.0, -sx, cx]])
    r = rx @ rz
    return (tuple(r[0]), tuple(r[1]), tuple(r[2]))  # type: ignore[return-value]


def random_rotation(rng: np.random.Generator) -> tuple[Vec3, Vec3, Vec3]:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return (tuple(q[0]), tuple(q[1]), tuple(q[2]))  # type: ignore[return-value]


def random_unit(rng: np.random.Generator) -> Vec3:
    v = rng.normal(size=3)
    v /= np.linalg.norm(v)
    return (float(v[0]), float(v[1]), float(v[2]))
