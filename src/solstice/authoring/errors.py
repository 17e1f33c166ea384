"""The one error type of solstice.authoring: its message is one sentence a user can act on."""


class AuthoringError(Exception):
    """Scaffolding or building failed; the message names the offending value and what to do."""
