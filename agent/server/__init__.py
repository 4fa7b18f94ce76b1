"""ragroute over HTTP: langserve routes for the query graph plus /ingest, /documents/{id}, /health, /ready.

`create_app()` builds the FastAPI app; `ragroute serve` runs it with uvicorn. Callers authenticate with an
`X-API-Key` header when keys are configured; each key maps to an identity whose groups and clearance are
forced into every run's `configurable`, so a request body can narrow but never widen what a caller sees.
Without keys the server is open and anonymous callers see public documents only.

Modules: app (the app factory and /ask), auth (API keys -> Identity), guard (authentication and body caps),
policy (what a caller may set, ask and write), uploads (ingest request parsing), documents (/ingest,
/documents), health (/health, /ready, /stats), answers (response cache and serializer), state (settings,
the served index), serve (the `ragroute serve` sub-command). Names are loaded on first use (PEP 562), so
`ragroute --help` and `ragroute.server.serve` work without the `serve` extra (fastapi, langserve).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ below loads them
    from ragroute.server.answers import cached_answers
    from ragroute.server.app import SESSION_HEADER, create_app
    from ragroute.server.auth import ANONYMOUS, Identity, load_api_keys
    from ragroute.server.guard import API_KEY_HEADER, PUBLIC_PATHS, GuardMiddleware
    from ragroute.server.policy import CLIENT_LIMITS, SERVER_KEYS, check_question_input, server_configurable
    from ragroute.server.serve import cmd_serve, register
    from ragroute.server.state import (
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_QUESTION_CHARS,
        DEFAULT_MAX_UPLOAD_BYTES,
        IndexHolder,
        ServerSettings,
    )
    from ragroute.server.uploads import documents_from_json, documents_from_uploads

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "create_app": "ragroute.server.app",
    "SESSION_HEADER": "ragroute.server.app",
    "cached_answers": "ragroute.server.answers",
    "Identity": "ragroute.server.auth",
    "ANONYMOUS": "ragroute.server.auth",
    "load_api_keys": "ragroute.server.auth",
    "GuardMiddleware": "ragroute.server.guard",
    "API_KEY_HEADER": "ragroute.server.guard",
    "PUBLIC_PATHS": "ragroute.server.guard",
    "server_configurable": "ragroute.server.policy",
    "check_question_input": "ragroute.server.policy",
    "SERVER_KEYS": "ragroute.server.policy",
    "CLIENT_LIMITS": "ragroute.server.policy",
    "ServerSettings": "ragroute.server.state",
    "IndexHolder": "ragroute.server.state",
    "DEFAULT_MAX_BODY_BYTES": "ragroute.server.state",
    "DEFAULT_MAX_UPLOAD_BYTES": "ragroute.server.state",
    "DEFAULT_MAX_QUESTION_CHARS": "ragroute.server.state",
    "documents_from_json": "ragroute.server.uploads",
    "documents_from_uploads": "ragroute.server.uploads",
    "cmd_serve": "ragroute.server.serve",
    "register": "ragroute.server.serve",
}

__all__ = [
    "ANONYMOUS",
    "API_KEY_HEADER",
    "CLIENT_LIMITS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_QUESTION_CHARS",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "GuardMiddleware",
    "Identity",
    "IndexHolder",
    "PUBLIC_PATHS",
    "SERVER_KEYS",
    "SESSION_HEADER",
    "ServerSettings",
    "cached_answers",
    "check_question_input",
    "cmd_serve",
    "create_app",
    "documents_from_json",
    "documents_from_uploads",
    "load_api_keys",
    "register",
    "server_configurable",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragroute.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
