"""Runtime services the nodes stand on: providers, caching, tracing, retrieval scope, step helpers."""
