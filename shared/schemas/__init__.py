"""Versioned schemas of everything that crosses between a site and the coordinator."""

from shared.schemas._base import SchemaError, VersionedModel
from shared.schemas.card import DatasetCard, SiteContribution
from shared.schemas.common import GeneratorInfo, PrivacySpend
from shared.schemas.manifest import ManifestItem, SyntheticSetManifest
from shared.schemas.metrics import ClassMetrics, SiteMetricsReply
from shared.schemas.round_request import RoundRequest

__all__ = [
    "ClassMetrics",
    "DatasetCard",
    "GeneratorInfo",
    "ManifestItem",
    "PrivacySpend",
    "RoundRequest",
    "SchemaError",
    "SiteContribution",
    "SiteMetricsReply",
    "SyntheticSetManifest",
    "VersionedModel",
]
