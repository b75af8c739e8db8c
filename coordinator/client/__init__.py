"""Clients of the coordinator service's API: operator and researcher calls, resumable downloads."""
