"""Outcomes of control operations that are not success; each maps to one HTTP status."""

from __future__ import annotations


class ControlError(Exception):
    """Base class; str() is the one-sentence detail shown to the user."""

    status = 500


class NotFoundError(ControlError):
    """No such plugin or token."""

    status = 404


class ConflictError(ControlError):
    """The change conflicts with stored state (duplicate slug, inactive plugin)."""

    status = 409


class InvalidError(ControlError):
    """The request is well-formed but its values cannot be used."""

    status = 422


class RefusedError(ControlError):
    """The command is refused by the command policy."""

    status = 400


class StartFailedError(ControlError):
    """The plugin could not be started with the requested settings; the old one keeps serving."""

    status = 502


class UnavailableError(ControlError):
    """Something the change depends on (a plugin's hook) failed; nothing was changed."""

    status = 503
