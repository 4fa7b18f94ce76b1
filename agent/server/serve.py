"""`ragroute serve`: the sub-command that runs the HTTP API with uvicorn."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ragroute.tools.errors import ConfigError, InputError

log = logging.getLogger("ragroute.server")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
SERVE_EXTRA_MISSING = "`ragroute serve` needs the serve extra: pip install 'ragroute[serve]'"


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP API with uvicorn."""
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    try:  # the app needs the optional `serve` extra (fastapi, langserve, uvicorn) and loads the graph
        import uvicorn
        from ragroute.server.app import create_app
        from ragroute.server.auth import ANONYMOUS, ANONYMOUS_WRITER
    except ImportError as exc:
        raise ConfigError(f"{SERVE_EXTRA_MISSING} ({exc})") from None
    # no --index anywhere: create_app reads $RAGROUTE_INDEX_DIR, else ~/.ragroute/index (as the CLI does)
    index = args.serve_index or getattr(args, "index", None)
    anonymous = ANONYMOUS_WRITER if args.allow_anonymous_writes else ANONYMOUS
    app = create_app(index, args.api_keys, llm=args.llm, redact_pii=args.redact_pii, anonymous=anonymous)
    if app.state.settings.keys and args.allow_anonymous_writes:
        log.warning("--allow-anonymous-writes has no effect: with API keys every caller needs a key")
    elif args.allow_anonymous_writes and args.host not in LOCAL_HOSTS:
        log.warning(
            "serving on %s without API keys and with anonymous writes: anyone who can reach it may "
            "ingest and delete (public documents and ids under 'anonymous/')",
            args.host,
        )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(subparsers: Any) -> None:
    """Add `ragroute serve` to the CLI (ragroute.cli.build_parser calls it)."""
    p = subparsers.add_parser(
        "serve",
        help="serve the HTTP API (langserve /ask routes, /ingest, /documents, /health, /ready)",
        description="Serve the HTTP API: /ask/invoke|batch|stream|stream_events|playground, POST /ingest, "
        "DELETE /documents/{id} (soft; ?hard=true), POST /documents/{id}/restore, GET /health, GET /ready, "
        "GET /stats.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--index", dest="serve_index", help="index folder (same as the global --index)")
    p.add_argument(
        "--api-keys",
        help="JSON or a JSON file mapping key -> {user, groups, clearance, write} "
        "(default: $RAGROUTE_API_KEYS or $RAGROUTE_API_KEYS_FILE; none: open, public documents only, "
        "read-only)",
    )
    p.add_argument(
        "--allow-anonymous-writes",
        action="store_true",
        help="without API keys, let anonymous callers ingest and delete (public documents and new ids "
        "under 'anonymous/'); default: a server without keys is read-only",
    )
    p.add_argument("--llm", help="chat model for every run, e.g. openai:gpt-4o-mini (default: offline)")
    p.add_argument(
        "--redact-pii",
        action="store_true",
        help="replace PII in every question (before retrieval, models and traces) and in every "
        "ingested document (mapping kept encrypted when RAGROUTE_PII_KEY is set)",
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
