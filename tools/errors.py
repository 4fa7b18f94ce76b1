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


# a JSON "\ud800" escape decodes to a lone surrogate: no tokenizer, hash, sqlite or Chroma call takes one
def is_valid_unicode(text: str) -> bool:
    """Whether `text` encodes as UTF-8 (a lone surrogate does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_unicode(text: str, what: str) -> None:
    """Raise InputError naming `what` when `text` holds a lone surrogate."""
    if not is_valid_unicode(text):
        raise InputError(f"{what} contains invalid unicode (a lone surrogate)")


def printable(text: str) -> str:
    """`text` with any lone surrogate as its \\u escape: safe to report, log, encode and send as JSON."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


MAX_VALUE_DEPTH = 100  # nested lists/dicts in one user value (metadata, extra); a filter stops at about 70


def value_problem(value: object, what: str, max_depth: int = MAX_VALUE_DEPTH) -> str | None:
    """Why a JSON-like user value cannot be stored or hashed (a lone surrogate anywhere, nested deeper
    than `max_depth`); None when it can."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:  # iterative: the value may be deeper than Python's recursion limit
        item, depth = stack.pop()
        if depth > max_depth:
            return f"{what} nests deeper than {max_depth} levels"
        if isinstance(item, str) and not is_valid_unicode(item):
            return f"{what} contains invalid unicode (a lone surrogate)"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in [*item.keys(), *item.values()])
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    return None
