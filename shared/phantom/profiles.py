"""Scanner and population profiles: what makes one hospital's CT look unlike another's.

Four training-site profiles, one `external` profile that no training site shares, used to measure
how a model generalises, and one `public` profile for the foundation model's corpus. Figures
follow DESIGN.md: pixel spacing 0.6-1.0 mm, slice spacing 1-5 mm, noise 8-30 HU, HU calibration
offsets of a few HU, contrast or not, vendor tags, patient size and class prevalence.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.classes import (
    BENIGN_CYST,
    DEFAULT_CLASSES,
    GERM_CELL_TUMOUR,
    NEUROGENIC_TUMOUR,
    NORMAL,
    THYMIC_CARCINOMA,
    THYMOMA,
)
from shared.errors import FedsynthError


class PhantomError(FedsynthError):
    """Bad phantom parameters, an unknown profile, or an output folder that cannot be used."""


@dataclass(frozen=True)
class ScannerProfile:
    name: str
    description: str
    manufacturer: str
    model: str
    kernel: str  # the vendor's ConvolutionKernel name
    lung_kernel: str  # the sharp reconstruction some studies also carry
    pixel_spacing_mm: tuple[float, float]  # range at a 512 matrix; the field of view fits the patient
    slice_spacing_mm: float
    noise_hu: float  # noise standard deviation in water for an average patient
    kernel_blur_mm: float  # in-plane resolution of the reconstruction kernel (Gaussian sigma)
    edge_enhancement: float  # 0 for soft kernels; > 0 sharpens edges and noise
    hu_offset: float  # calibration error added to every voxel
    contrast_rate: float  # fraction of studies with IV contrast
    patient_size: float  # mean body scale of the population (1 = average adult)
    prevalence: dict[str, float]
    file_naming: str  # see shared.phantom.dicom_io.file_name
    shuffled: bool  # files written in an order unrelated to slice position
    signed_pixels: bool  # int16 with intercept 0, or uint16 with intercept -1024
    padding_hu: float | None  # value stored outside the reconstruction circle, if any
    kvp: float = 120.0

    def __post_init__(self) -> None:
        if set(self.prevalence) != set(DEFAULT_CLASSES):
            raise ValueError(f"profile {self.name}: prevalence must name exactly {DEFAULT_CLASSES}")


def _prev(
    normal: float, thymoma: float, carcinoma: float, gct: float, neuro: float, cyst: float
) -> dict[str, float]:
    raw = {
        NORMAL: normal,
        THYMOMA: thymoma,
        THYMIC_CARCINOMA: carcinoma,
        GERM_CELL_TUMOUR: gct,
        NEUROGENIC_TUMOUR: neuro,
        BENIGN_CYST: cyst,
    }
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


PUBLIC_PROFILE = "public"

PROFILES: dict[str, ScannerProfile] = {
    p.name: p
    for p in (
        ScannerProfile(
            name="site_a",
            description="Tertiary thymic-tumour centre; thin slices, soft kernel, mostly contrast",
            manufacturer="SIEMENS",
            model="SOMATOM Definition AS+",
            kernel="B30f",
            lung_kernel="B70f",
            pixel_spacing_mm=(0.68, 0.80),
            slice_spacing_mm=1.0,
            noise_hu=12.0,
            kernel_blur_mm=0.75,
            edge_enhancement=0.0,
            hu_offset=-3.0,
            contrast_rate=0.8,
            patient_size=1.0,
            prevalence=_prev(0.15, 0.30, 0.12, 0.15, 0.13, 0.15),
            file_naming="uid",
            shuffled=False,
            signed_pixels=False,
            padding_hu=None,
        ),
        ScannerProfile(
            name="site_b",
            description="Community hospital; 2.5 mm slices, standard kernel, half contrast",
            manufacturer="GE MEDICAL SYSTEMS",
            model="Revolution CT",
            kernel="STANDARD",
            lung_kernel="LUNG",
            pixel_spacing_mm=(0.70, 0.86),
            slice_spacing_mm=2.5,
            noise_hu=18.0,
            kernel_blur_mm=0.65,
            edge_enhancement=0.15,
            hu_offset=2.0,
            contrast_rate=0.5,
            patient_size=1.04,
            prevalence=_prev(0.25, 0.12, 0.05, 0.15, 0.23, 0.20),
            file_naming="ge",
            shuffled=True,
            signed_pixels=True,
            padding_hu=-2000.0,
        ),
        ScannerProfile(
            name="site_c",
            description="Large-patient population; 3 mm slices, noisy low-dose protocol, little contrast",
            manufacturer="Philips",
            model="Brilliance 64",
            kernel="B",
            lung_kernel="L",
            pixel_spacing_mm=(0.78, 0.98),
            slice_spacing_mm=3.0,
            noise_hu=26.0,
            kernel_blur_mm=0.9,
            edge_enhancement=0.0,
            hu_offset=4.0,
            contrast_rate=0.3,
            patient_size=1.1,
            prevalence=_prev(0.20, 0.10, 0.05, 0.15, 0.30, 0.20),
            file_naming="philips",
            shuffled=True,
            signed_pixels=True,
            padding_hu=None,
            kvp=140.0,
        ),
        ScannerProfile(
            name="site_d",
            description="Small-patient population; thick 5 mm slices, low noise, almost always contrast",
            manufacturer="UIH",
            model="uCT 760",
            kernel="B_SOFT_B",
            lung_kernel="B_LUNG_B",
            pixel_spacing_mm=(0.60, 0.70),
            slice_spacing_mm=5.0,
            noise_hu=9.0,
            kernel_blur_mm=1.0,
            edge_enhancement=0.0,
            hu_offset=-5.0,
            contrast_rate=0.9,
            patient_size=0.92,
            prevalence=_prev(0.15, 0.22, 0.08, 0.12, 0.20, 0.23),
            file_naming="numbered",
            shuffled=False,
            signed_pixels=False,
            padding_hu=None,
            kvp=110.0,
        ),
        ScannerProfile(
            name="external",
            description="Held-out centre no training site shares: other vendor, sharper kernel, HU drift",
            manufacturer="CANON_MEC",
            model="Aquilion ONE",
            kernel="FC13",
            lung_kernel="FC52",
            pixel_spacing_mm=(0.70, 0.90),
            slice_spacing_mm=2.0,
            noise_hu=22.0,
            kernel_blur_mm=0.55,
            edge_enhancement=0.35,
            hu_offset=7.0,
            contrast_rate=1.0,
            patient_size=1.06,
            prevalence=_prev(0.10, 0.12, 0.04, 0.17, 0.24, 0.21),
            file_naming="canon",
            shuffled=True,
            signed_pixels=True,
            padding_hu=-2048.0,
            kvp=100.0,
        ),
        # The public corpus a foundation model learns from: chest CT as a public collection holds
        # it, from a scanner no hospital uses, without a mediastinal mass or a class label (its
        # patients are drawn with shared.phantom.lesions.PUBLIC_FINDINGS, not from `prevalence`).
        ScannerProfile(
            name=PUBLIC_PROFILE,
            description="Public chest CT collection; another vendor, 1.25 mm slices, no mediastinal mass",
            manufacturer="FUJIFILM",
            model="FCT Speedia HD",
            kernel="FC08",
            lung_kernel="FC86",
            pixel_spacing_mm=(0.66, 0.84),
            slice_spacing_mm=1.25,
            noise_hu=15.0,
            kernel_blur_mm=0.7,
            edge_enhancement=0.08,
            hu_offset=0.0,
            contrast_rate=0.6,
            patient_size=1.02,
            prevalence=_prev(1, 0, 0, 0, 0, 0),
            file_naming="numbered",
            shuffled=False,
            signed_pixels=True,
            padding_hu=None,
        ),
    )
}

TRAINING_PROFILES: tuple[str, ...] = ("site_a", "site_b", "site_c", "site_d")


def get_profile(name: str) -> ScannerProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise PhantomError(
            f"unknown phantom profile {name!r}; choose one of: {', '.join(PROFILES)}"
        ) from None
