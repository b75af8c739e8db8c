"""The coordinator as a service: database, API tokens and roles, the HTTP API (issue 7, in progress)."""
