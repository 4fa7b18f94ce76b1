"""ragroute over the Model Context Protocol: `search` and `ask` as MCP tools, scoped to the caller.

Modules: app (the FastMCP server, its tools and the API-key guard for streamable HTTP), serve (the
`ragroute mcp` sub-command: stdio by default, `--http` for streamable HTTP). The caller's access comes from
the server's configuration (stdio: `--api-key`; HTTP: each request's key), never from a tool argument.
This package imports nothing, so `ragroute --help` works without the `mcp` extra.
"""
