"""The project's exception hierarchy: one-line messages for user mistakes, typed provider failures."""

from __future__ import annotations


class RagrouteError(Exception):
    """Base class of every error ragroute raises on purpose."""


class ConfigError(RagrouteError, ValueError):
    """A configuration value is unknown or out of range; the message names the value and the options."""


class InputError(RagrouteError, ValueError):
    """A user-supplied input (query, filter, document) is malformed."""


class FilterError(InputError):
    """A metadata filter expression is malformed (unknown operator, wrong operand type)."""


class IngestError(RagrouteError):
    """A document could not be ingested; carries the source it came from."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.reason = message


class ProviderError(RagrouteError):
    """An external provider (LLM, reranker, embeddings, tracing) failed or timed out."""

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider


class IndexError_(RagrouteError):
    """The index on disk is missing, locked or inconsistent."""
