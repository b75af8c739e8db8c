"""Errors of the site agent's commands that are not about one subsystem."""

from shared.errors import FedsynthError


class CommandInputError(FedsynthError):
    """A path or reference given on the command line does not exist or cannot be used."""
