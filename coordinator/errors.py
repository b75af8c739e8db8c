"""The coordinator's exception tree: this module holds the base and draws the whole tree, each
error beside the module that defines it.

    FedsynthError (shared.errors)
     +-- CoordinatorError          anything the coordinator raises on purpose
          +-- FederationError      federation.errors: Flower refused a command, a round cannot run
          |    +-- CertificateError      federation.certificates: TLS files missing or in the way
          |    +-- RoundError            federation.errors: an unknown round, or a folder that is not one
          |    +-- SuperLinkUnavailable  federation.errors: the SuperLink did not answer at all
          |    +-- RoundFailed           federation.errors: the round cannot go on (the report's reason)
          |    +-- RoundCancelled        federation.errors: an operator cancelled the round
          |    +-- ReplyRejected         federation.validation: a site's reply failed a check
          +-- TrainingError        diagnosis.training: a dataset that cannot train the asked model
          +-- CorpusError          foundation.corpus: a public corpus that is empty or not CT
          +-- FoundationTrainingError  foundation.training: settings a foundation cannot train with
          +-- TokenError           service.tokens: a token cannot be made or used
          +-- StorageError         service.object_store: an object could not be written, read, checked
          +-- CatalogueError       service.catalogue: what a round left does not check out
          +-- ClientError          client.api: the service unreachable, or it refused a request
          |    +-- Unreachable     client.api: no answer at all
          |    +-- Interrupted     client.download: a file stopped arriving part-way
          +-- DemoError            demo.run: the demo's folder is in the way, or a step failed
          +-- DemoServiceError     demo.service: the demo's round could not go through the service
          +-- PageRefused          dashboard.api: the API refused a call a dashboard page made
"""

from shared.errors import FedsynthError


class CoordinatorError(FedsynthError):
    """Base of every error the coordinator raises on purpose."""
