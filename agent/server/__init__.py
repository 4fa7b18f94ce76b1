"""ragroute over HTTP: langserve routes for the query graph plus /ingest, /documents/{id}, /health, /ready.

`create_app()` builds the FastAPI app; `ragroute serve` runs it with uvicorn. Callers authenticate with an
`X-API-Key` header when keys are configured; each key maps to an identity whose groups and clearance are
forced into every run's `configurable`, so a request body can narrow but never widen what a caller sees.
Without keys the server is open and anonymous callers see public documents only.

Modules: app (the app factory and /ask), auth (API keys -> Identity), guard (authentication and body caps),
policy (what a caller may set, ask and write), uploads (ingest request parsing), documents (/ingest,
/documents), health (/health, /ready, /stats), answers (response cache and serializer), state (settings,
the served index), serve (the `ragroute serve` sub-command). Import from the module that defines a name
(`from ragroute.server.app import create_app`); this package imports nothing, so `ragroute --help` and
`ragroute.server.serve` work without the `serve` extra (fastapi, langserve).
"""
