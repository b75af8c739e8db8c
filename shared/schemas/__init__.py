"""Versioned schemas of everything that crosses between a site and the coordinator."""

from shared.schemas._base import SchemaError, VersionedModel
from shared.schemas.card import DatasetCard, SiteContribution
from shared.schemas.common import GeneratorInfo, PrivacySpend
from shared.schemas.foundation_card import CorpusSource, FoundationCard
from shared.schemas.manifest import ManifestItem, SyntheticSetManifest
from shared.schemas.metrics import ClassMetrics, Figure, SiteMetricsReply
from shared.schemas.round_request import RoundRequest
from shared.schemas.site_reply import BudgetStatus, EvaluateRequest, FoundationHeld, Refusal, RefusalReason

__all__ = [
    "BudgetStatus",
    "ClassMetrics",
    "CorpusSource",
    "DatasetCard",
    "EvaluateRequest",
    "Figure",
    "FoundationCard",
    "FoundationHeld",
    "GeneratorInfo",
    "ManifestItem",
    "PrivacySpend",
    "Refusal",
    "RefusalReason",
    "RoundRequest",
    "SchemaError",
    "SiteContribution",
    "SiteMetricsReply",
    "SyntheticSetManifest",
    "VersionedModel",
]
