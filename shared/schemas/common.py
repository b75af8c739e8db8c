"""Field types shared by several schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

# Identifiers that may leave a site: short, plain, and never derived from patient data.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def _inside_folder(path: str) -> str:
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError(f"{path!r} must be a plain relative path inside the dataset folder")
    return path


# A path inside a dataset folder: relative, forward slashes, no way out of the folder.
RelativePath = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", max_length=255),
    AfterValidator(_inside_folder),
]
Shape3D = tuple[
    Annotated[int, Field(ge=8, le=512)],
    Annotated[int, Field(ge=8, le=512)],
    Annotated[int, Field(ge=8, le=512)],
]
Spacing3D = tuple[
    Annotated[float, Field(gt=0, le=20)],
    Annotated[float, Field(gt=0, le=20)],
    Annotated[float, Field(gt=0, le=20)],
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


class PrivacySpend(_Part):
    """What one DP release cost, as the site's accountant computed it over what really ran."""

    epsilon: float = Field(gt=0, description="epsilon at `delta`; inf only for non-private benchmark runs")
    delta: float = Field(ge=0, le=1e-3)
    accountant: str = Field(pattern=r"^(rdp|prv|gdp|none)$")
    noise_multiplier: float = Field(ge=0)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)
    max_grad_norm: float = Field(gt=0)


class GeneratorInfo(_Part):
    """Which generator produced a synthetic set."""

    backend: Identifier
    version: str = Field(min_length=1, max_length=64)
    weights_sha256: Sha256 | None = None
    # The public foundation a fine-tuned generator started from (public weights: no privacy cost).
    foundation_id: Identifier | None = None
    foundation_sha256: Sha256 | None = None
