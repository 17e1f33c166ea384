"""The errors of OCI plugin handling; each message is one sentence that says what to do."""

from __future__ import annotations


class OciError(Exception):
    """Base of every OCI failure."""


class InvalidReferenceError(OciError, ValueError):
    """An oci:// reference that cannot be parsed."""


class RegistryError(OciError):
    """The registry could not be reached or answered something unusable."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class RegistryAuthError(RegistryError):
    """The registry refused our credentials, or has none configured for it."""


class NotFoundError(RegistryError):
    """The repository, tag, manifest or blob does not exist."""


class ContentError(OciError):
    """Content that does not match its digest, is too large, or is not a plugin."""


class PlatformError(OciError):
    """An image index has no manifest for the requested platform."""


class SignatureRequiredError(OciError):
    """A signature is required and none valid was found."""


class OciDisabledError(OciError):
    """OCI plugins are not enabled or the registry is not allowed."""
