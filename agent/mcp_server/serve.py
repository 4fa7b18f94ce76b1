"""`ragroute mcp`: the sub-command that serves search and ask over MCP (stdio, or streamable HTTP)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ragroute.tools.errors import ConfigError, InputError

MCP_EXTRA_MISSING = "`ragroute mcp` needs the mcp extra: pip install 'ragroute[mcp]'"


def cmd_mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools over stdio, or over streamable HTTP with --http."""
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {args.port}")
    if args.http and args.api_key:
        raise InputError(
            "--api-key picks the caller of a stdio server; over HTTP each request sends its own key "
            "(X-API-Key or Authorization: Bearer)"
        )
    try:  # the MCP SDK is the optional `mcp` extra; the app also loads the graph
        from ragroute.mcp_server.app import serve
    except ImportError as exc:
        raise ConfigError(f"{MCP_EXTRA_MISSING} ({exc})") from None
    serve(
        args.mcp_index or getattr(args, "index", None),
        api_keys=args.api_keys,
        # the environment keeps the key out of `ps` and out of MCP client configs' argument lists
        api_key=None if args.http else (args.api_key or os.environ.get("RAGROUTE_API_KEY")),
        llm=args.llm,
        http=args.http,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
    )
    return 0


def register(subparsers: Any) -> None:
    """Add `ragroute mcp` to the CLI (ragroute.cli.build_parser calls it)."""
    p = subparsers.add_parser(
        "mcp",
        help="serve search and ask as Model Context Protocol tools (stdio; --http for streamable HTTP)",
        description="Serve the MCP tools `search` and `ask`. Over stdio (default) the server runs as "
        "--api-key's identity, or sees public documents only when no keys are configured; with --http "
        "it serves streamable HTTP at /mcp and authenticates every request by X-API-Key or "
        "Authorization: Bearer.",
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    p.add_argument(
        "--index", dest="mcp_index", metavar="DIR", help="index folder (same as the global --index)"
    )
    p.add_argument(
        "--api-keys",
        help="JSON or a JSON file mapping key -> {user, groups, clearance} "
        "(default: $RAGROUTE_API_KEYS or $RAGROUTE_API_KEYS_FILE; none: public documents only)",
    )
    p.add_argument(
        "--api-key",
        help="stdio only: the key whose identity this server runs as (default: $RAGROUTE_API_KEY)",
    )
    p.add_argument("--llm", help="chat model for ask, e.g. openai:gpt-4o-mini (default: offline)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_mcp)
