"""What a caller may do: the run settings it may choose, the questions it may ask, the documents it may write.

A request body can narrow but never widen what a caller sees: the server forces the index, the model
and the caller's groups and clearance into every run, and a key writes only documents it can read or
ids it owns, so a document it cannot read looks exactly like a missing one (`may_write`). What a remote
caller reads back names no file on the server: a source that is a server path is shown relative to its
ingested folder (`without_server_paths`).
"""

from __future__ import annotations

import ntpath
import os
from collections.abc import Mapping
from typing import Any

from ragroute.context import RERANKERS, Context
from ragroute.runtime.feedback import server_caller
from ragroute.server.auth import Identity
from ragroute.server.state import ServerSettings
from ragroute.tools.errors import InputError, RagrouteError, check_unicode
from ragroute.tools.filters import parse_filter
from ragroute.tools.types import Document

# Context fields a client may set through `configurable`; everything else is decided by the server.
SERVER_KEYS = (
    "index_dir",
    "llm",
    "user_groups",
    "clearance",
    "strict",
    "llm_timeout_s",
    "reranker_timeout_s",
    "extra",
)
# Upper bounds on client-chosen knobs, so one request cannot ask for unbounded work.
CLIENT_LIMITS = {
    "k_simple": 50,
    "k_expand": 100,
    "k_multihop": 100,
    "candidate_k": 200,
    "token_budget": 16_000,
    "max_retries": 3,
    "max_subquestions": 8,
    "num_variants": 8,
}
QUESTION_FIELDS = ["question", "filters"]


def _check_client_configurable(values: dict[str, Any]) -> None:
    for name, limit in CLIENT_LIMITS.items():
        value = values.get(name)
        if isinstance(value, int) and value > limit:
            raise InputError(f"{name}={value} is above this server's limit of {limit}")
    reranker = values.get("reranker")
    if reranker is not None and reranker not in RERANKERS:
        raise InputError(f"reranker={reranker!r} is not allowed here; options: {list(RERANKERS)}")
    flt = values.get("filters")
    if flt is not None:
        _check_filter(flt, "configurable.filters")


def _check_filter(flt: Any, where: str) -> None:
    if not isinstance(flt, dict):
        raise InputError(f"{where} must be a JSON object, got {type(flt).__name__}")
    try:
        parse_filter(flt)
    except RagrouteError as exc:
        raise InputError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from None


def server_configurable(
    client: Mapping[str, Any] | None, identity: Identity, settings: ServerSettings
) -> dict[str, Any]:
    """The configurable a run actually gets: the client's allowed knobs, then the server's forced fields."""
    values = dict(client or {})
    Context.check_keys(values)  # an unknown key is a 422 naming it and the options, never dropped
    defaults = Context()
    # langserve fills every Context field; only non-default values count as the client's choices
    chosen = {k: v for k, v in values.items() if k not in SERVER_KEYS and v != getattr(defaults, k)}
    _check_client_configurable(chosen)
    merged = {
        **chosen,
        "index_dir": settings.index_dir,
        "llm": settings.llm,
        **identity.configurable(),
        **({"redact_query_pii": True} if settings.redact_pii else {}),
        "extra": {"caller": server_caller(identity.user)},  # whose answers these are (feedback)
    }
    Context.from_dict(merged)  # the full combination must validate (k bounds etc.)
    return merged


def check_request_configurable(config: Any) -> None:
    """Reject unknown keys in a request body's `config.configurable` (a batch may send a list of configs):
    langserve drops them before `server_configurable` sees the config, so the raw body is checked."""
    for one in config if isinstance(config, list) else [config]:
        if isinstance(one, dict) and isinstance(one.get("configurable"), dict):
            Context.check_keys(one["configurable"])


def check_question_input(value: Any, max_chars: int, where: str = "input") -> None:
    """Reject a bad graph input with InputError: question must be a non-blank string of bounded length."""
    if not isinstance(value, dict):
        raise InputError(f'{where} must be an object like {{"question": "..."}}')
    unknown = set(value) - set(QUESTION_FIELDS)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {sorted(unknown)}; options: {QUESTION_FIELDS}")
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}.question must be a non-empty string")
    if len(question) > max_chars:
        raise InputError(f"{where}.question is {len(question)} characters; the limit is {max_chars}")
    check_unicode(question, f"{where}.question")
    if value.get("filters") is not None:
        _check_filter(value["filters"], f"{where}.filters")


def write_refusal(identity: Identity, action: str) -> str | None:
    """Why `identity` may not `action` ("ingest", "delete", "restore") at all; None when its key may write."""
    return None if identity.write else f"API key of {identity.user!r} may not {action}"


def may_write(index: Any, doc_id: str, identity: Identity) -> bool:
    """Whether `identity` may create, replace, delete or restore `doc_id`.

    Doc ids are one global name space, so a hidden document occupies its id: accepting a write to a
    missing id but refusing one to a hidden id is an existence oracle, and accepting both would overwrite
    the hidden document. So a restricted key writes only where neither can happen:

    - an id it can read (live or in the trash, whose ACL the trash keeps): visible, nothing to hide;
    - an id under the prefix it owns (`Identity.owned_prefix`, "<user>/" unless the key names a
      `namespace`): those ids are the key's own, so it may replace whatever is there;
    - everything else, hidden and missing alike, is refused with one answer (`refused_write`).

    An unrestricted key sees every document, so for it nothing is hidden and every id is writable."""
    if identity.unrestricted or doc_id.startswith(identity.owned_prefix):
        return True
    return bool(index.can_read_document(doc_id, identity.scope()))


def refused_write(doc_id: str, identity: Identity) -> str:
    """The one refusal for an id `may_write` rejects: the same words whether it is hidden or missing."""
    return (
        f"this API key may not write doc_id {doc_id!r}: it may write documents it can read "
        f"and new ones under {identity.owned_prefix!r}"
    )


def split_writable(index: Any, docs: list[Any], identity: Identity) -> tuple[list[Any], list[Document]]:
    """(allowed, denied): documents whose id the caller may not write are held back, the rest go through."""
    denied_ids = {id(d) for d in docs if isinstance(d, Document) and not may_write(index, d.doc_id, identity)}
    return [d for d in docs if id(d) not in denied_ids], [d for d in docs if id(d) in denied_ids]


def shown_source(source: str, doc_id: str | None = None) -> str:
    """`source` as a remote caller sees it: a server file path becomes the doc id when the path ends with
    it (a file's id is its path under the ingested folder), else the file name; urls, `api:` and
    `upload:` sources are returned unchanged."""
    if not (os.path.isabs(source) or ntpath.isabs(source)):
        return source
    path = source.replace("\\", "/")
    if doc_id and path.endswith("/" + doc_id.lstrip("/")):
        return doc_id.lstrip("/")
    return path.rsplit("/", 1)[-1]


def without_server_paths(value: Any) -> Any:
    """`value` (an answer, a stream chunk or event, tool results) as a copy in which every `source` that is
    a server file path is shown by `shown_source`; other values are returned as they are."""
    if isinstance(value, Mapping):
        out = {key: without_server_paths(v) for key, v in value.items()}
        if isinstance(out.get("source"), str):
            doc_id = out.get("doc_id")
            out["source"] = shown_source(out["source"], doc_id if isinstance(doc_id, str) else None)
        return out
    if isinstance(value, list | tuple):
        return [without_server_paths(v) for v in value]
    return value
