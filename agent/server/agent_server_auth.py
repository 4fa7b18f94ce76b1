"""ragroute's API keys on the LangGraph Agent Server: `langgraph dev`/`up` with `"auth": {"path": ...:auth}`.

The same keys as `ragroute serve` (RAGROUTE_API_KEYS / RAGROUTE_API_KEYS_FILE): `x-api-key: KEY` or
`Authorization: Bearer KEY` resolves to an Identity, whose access fields travel in the authenticated user;
the graph reads them from `langgraph_auth_user` on every run (`context_of`), so a client's context or
configurable can never widen them. Threads, runs, crons and assistants belong to the key's user. Without
keys every caller is anonymous and reads public documents only, as with `ragroute serve`.
"""

from __future__ import annotations

import functools
from typing import Any

from langgraph_sdk import Auth
from ragroute.server.auth import ANONYMOUS, Identity, load_api_keys, presented_key
from ragroute.server.auth import authenticate as authenticate_key

# run settings the server decides (its index and model, with its secrets), never a client
SERVER_ONLY = ("index_dir", "llm")

auth = Auth()


@functools.cache
def _keys() -> dict[str, Identity]:
    return load_api_keys()


def _presented_key(headers: dict[bytes, bytes], keys: dict[str, Identity]) -> str | None:
    """X-API-Key, else a Bearer token (server.auth.presented_key on the raw ASGI headers)."""
    return presented_key(
        {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in headers.items()}, keys
    )


def identity_for(presented: str | None, keys: dict[str, Identity]) -> Identity | None:
    """The Identity a presented key runs as; None when refused. A keyless server runs every caller as
    anonymous (public only), whatever it presents."""
    if not keys:
        return ANONYMOUS
    return authenticate_key(keys, presented, None)


def user_of(identity: Identity) -> dict[str, Any]:
    """The Agent Server user for `identity`: its name and the access fields forced into every run."""
    permissions = ["write"] if identity.write else []
    return {"identity": identity.user, "permissions": permissions, **identity.configurable()}


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> dict[str, Any]:
    """Resolve the request's API key to a user; a missing or unknown key is a 401."""
    keys = _keys()
    identity = identity_for(_presented_key(headers, keys), keys)
    if identity is None:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="missing or unknown API key (send X-API-Key or Authorization: Bearer)"
        )
    return user_of(identity)


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """Every thread, run, cron and assistant a user creates is theirs; they see and change only their own."""
    if isinstance(value, dict):
        # in place: the server keeps its own reference to the metadata it passed in
        metadata = value.get("metadata")
        if metadata is None:
            metadata = value["metadata"] = {}
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.create_run
async def own_runs_on_server_settings(ctx: Auth.types.AuthContext, value: Any) -> Auth.types.FilterType:
    """A run is the thread owner's, and may not choose the server's index or model (403)."""
    kwargs = value.get("kwargs") or {}
    chosen = {**((kwargs.get("config") or {}).get("configurable") or {}), **(kwargs.get("context") or {})}
    refused = sorted(k for k in SERVER_ONLY if chosen.get(k) is not None)
    if refused:
        raise Auth.exceptions.HTTPException(
            status_code=403, detail=f"{', '.join(refused)} is chosen by the server, not per run"
        )
    return await owner_only(ctx, value)


def _own_or_system(ctx: Auth.types.AuthContext) -> dict[str, Any]:
    return {"$or": [{"owner": ctx.user.identity}, {"created_by": "system"}]}


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Auth.types.AssistantsRead) -> dict[str, Any]:
    """Everyone may use the graph's own assistant ("ragroute"); other assistants only their owner."""
    return _own_or_system(ctx)


@auth.on.assistants.search
async def search_assistants(
    ctx: Auth.types.AuthContext, value: Auth.types.AssistantsSearch
) -> dict[str, Any]:
    """Searches list the graph's own assistant and the caller's."""
    return _own_or_system(ctx)


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> None:
    """The store's items live under the user's own namespace."""
    namespace = tuple(value.get("namespace") or ())
    if namespace[:1] != (ctx.user.identity,):
        raise Auth.exceptions.HTTPException(status_code=403, detail="store namespaces start with your user")
