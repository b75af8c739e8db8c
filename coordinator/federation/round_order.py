"""What an operator orders when launching a round: the body of `POST /rounds`, what `coordinator
rounds launch` builds from its options, and what `plan_round` takes. Defaults are written here once."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import JsonDict

from shared.crop_box import GPU_BOX, GPU_SPACING_MM, check_box
from shared.schemas.common import Identifier

# The rule `check_box` enforces, written into the schema so that clients (and the contract test's
# generated requests) see it: each edge 16 to 512 voxels and a multiple of 8.
Edge = Annotated[int, Field(ge=16, le=512, multiple_of=8)]


# The one rule between two fields (`_foundation_only_for_its_backends`), written into the schema too,
# so that clients, and the contract test's generated requests, know a dpgan3d round names no foundation.
_NO_FOUNDATION_FOR_DPGAN3D: JsonDict = {
    "not": {
        "properties": {"generator": {"const": "dpgan3d"}, "foundation": {"type": "string"}},
        "required": ["generator", "foundation"],
    }
}


class RoundOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_NO_FOUNDATION_FOR_DPGAN3D)

    epsilon: float = Field(gt=0, le=1000, description="epsilon each site is asked to spend (it may refuse)")
    per_class: int = Field(ge=1, le=10_000, description="synthetic samples per class from each site")
    sites: tuple[Identifier, ...] | None = Field(None, description="default: every registered site")
    round_id: Identifier | None = Field(None, description="default: round-<UTC time>")
    box: tuple[Edge, Edge, Edge] = Field(
        GPU_BOX, description="box around the mediastinum, x y z voxels (multiples of 8); must match the sites"
    )
    spacing_mm: float = Field(GPU_SPACING_MM, gt=0, le=20, description="voxel size; must match the sites")
    delta: float | None = Field(
        None,
        gt=0,
        le=1e-5,
        description="the largest delta a site may use; default: each site's own, min(1e-5, 1/(10 N))",
    )
    min_sites: int | None = Field(None, ge=1, description="default: [federation] min_sites")
    generator: Literal["dpgan3d", "ldm3d", "lesionstats"] = Field(
        "lesionstats", description="the generator backend every site must run (a site on another refuses)"
    )
    foundation: Identifier | None = Field(
        None,
        description="the public foundation (an id from `coordinator foundation list`) every site starts "
        "from, sent to each site that lacks it (lesionstats and ldm3d); default: each site's own",
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        le=7 * 24 * 3600,
        description="seconds to wait for the sites' sets; default: [federation] round_timeout_s",
    )

    @model_validator(mode="after")
    def _foundation_only_for_its_backends(self) -> RoundOrder:
        if self.foundation is not None and self.generator == "dpgan3d":
            raise ValueError(
                "dpgan3d starts from no foundation: leave foundation out or choose another generator"
            )
        return self

    @field_validator("box")
    @classmethod
    def _box_fits_the_networks(cls, box: tuple[int, int, int]) -> tuple[int, int, int]:
        return check_box(box)


def described(field: str) -> str:
    """A field's description (and its default, if it has one), for the CLI's help text."""
    info = RoundOrder.model_fields[field]
    description = info.description or ""
    default = "" if info.is_required() or info.default is None else f" Default: {info.default}."
    return description[:1].upper() + description[1:] + "." + default
