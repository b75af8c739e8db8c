"""The site agent's exception tree. Each error is defined beside the code that raises it; this
module holds the two bases and draws the whole tree.

    FedsynthError (shared.errors)
     +-- SiteAgentError           anything the site agent raises on purpose
          +-- CommandInputError   here: a path or reference on the command line cannot be used
          +-- StoreError          ingest.store: the case store is missing, damaged or lacks a case
          +-- LabelsError         ingest.labels: the label manifest cannot be used
          +-- LedgerError         privacy.ledger: the ledger is damaged or contradicted
          +-- PrivacyEngineError  privacy.engine: DP-SGD cannot run on this module or state
          +-- SiteKeyError        federation.keys: the key pair is missing or in the way
          +-- JoinError           federation.supernode: the SuperNode cannot be started
          +-- BackupError         backup: a backup cannot be written, or an archive cannot be restored
          +-- SiteRefusal         what a round is refused with; `reason` and `public_detail`
               |                  are all the coordinator is told
               +-- BudgetExceeded   privacy.budget: over the cap                     (budget)
               +-- ExportRefused    synthetic.export: the audit or policy blocked it (audit)
               +-- TrainingBlocked  generator.training_run: an unfinished run        (not_ready)
               |    +-- TrainingInProgress  generator.training_run: another one trains now
               +-- GeneratorError   generator.backend: no generator can be had       (not_ready)
               +-- ForeignFoundation  generator.foundation_cache: not the pinned one (invalid_request)
               +-- EvaluationError  evaluation: nothing to score a model on          (not_ready)
               +-- Declined         federation.answers: a request this site will not serve (any)

A refusal's own message stays in the site's log, because it can name local paths; the reply
carries only the fixed `public_detail` sentence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import FedsynthError

if TYPE_CHECKING:
    from shared.schemas import RefusalReason


class SiteAgentError(FedsynthError):
    """Base of every error the site agent raises on purpose."""


class SiteRefusal(SiteAgentError):
    """An error that, met while answering a round, becomes the site's refusal."""

    reason: RefusalReason = "internal"
    public_detail: str = "the site agent could not complete the request; details are in the site's log"


class CommandInputError(SiteAgentError):
    """A path or reference given on the command line does not exist or cannot be used."""
