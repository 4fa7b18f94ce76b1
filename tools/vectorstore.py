"""Chroma wrapper: a persistent local store by default or a Chroma server over HTTP; we always pass our own
embeddings (the collection has no embedding function, so Chroma never downloads a model)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from ragroute.tools.errors import ConfigError, ProviderError

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

CHROMA_MODES = ("persistent", "http")


class VectorStore:
    """One Chroma collection (cosine space) keyed by chunk id."""

    def __init__(
        self,
        *,
        mode: str = "persistent",
        path: str | None = None,
        host: str = "localhost",
        port: int = 8000,
        collection: str = "ragroute",
    ) -> None:
        if mode not in CHROMA_MODES:
            raise ConfigError(f"unknown chroma_mode {mode!r}; options: {', '.join(CHROMA_MODES)}")
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if mode == "persistent":
            if not path:
                raise ConfigError("chroma_mode 'persistent' needs a path")
            os.makedirs(path, exist_ok=True)
            self._client = chromadb.PersistentClient(path=path, settings=settings)
        else:
            try:
                self._client = chromadb.HttpClient(host=host, port=int(port), settings=settings)
            except Exception as exc:  # connection failures come out as various chromadb/httpx errors
                raise ProviderError("chroma", f"cannot reach Chroma server at {host}:{port}: {exc}") from exc
        self.mode = mode
        try:
            self._col = self._client.get_or_create_collection(
                name=collection, metadata={"hnsw:space": "cosine"}, embedding_function=None
            )
        except ValueError as exc:
            raise ConfigError(f"bad collection name {collection!r}: {exc}") from exc
        try:
            self._max_batch = int(self._client.get_max_batch_size())
        except Exception:  # older servers lack the endpoint; Chroma's documented default is ~5k
            self._max_batch = 5000

    # ------------------------------------------------------------------ writes
    def upsert(
        self,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]],
        documents: Sequence[str] | None = None,
    ) -> None:
        """Insert or overwrite vectors (metadata must already be scalar-only)."""
        for start in range(0, len(ids), self._max_batch):
            end = start + self._max_batch
            vectors: list[Sequence[float]] = [list(e) for e in embeddings[start:end]]
            try:
                self._col.upsert(
                    ids=list(ids[start:end]),
                    embeddings=vectors,
                    metadatas=[m or {"_": True} for m in metadatas[start:end]],
                    documents=list(documents[start:end]) if documents is not None else None,
                )
            except Exception as exc:  # chromadb raises ValueError/ChromaError/httpx errors alike
                raise ProviderError("chroma", f"upsert of {end - start} vectors failed: {exc}") from exc

    def delete(self, ids: Iterable[str]) -> None:
        """Delete vectors by id (missing ids are ignored)."""
        ids = list(ids)
        for start in range(0, len(ids), self._max_batch):
            self._col.delete(ids=ids[start : start + self._max_batch])

    # ------------------------------------------------------------------ reads
    def ids(self) -> set[str]:
        """Every id in the collection."""
        out: set[str] = set()
        offset = 0
        page = 10_000
        while True:
            res = self._col.get(include=[], limit=page, offset=offset)
            got = res["ids"]
            out.update(got)
            if len(got) < page:
                return out
            offset += page

    def count(self) -> int:
        """Number of vectors."""
        return int(self._col.count())

    def query(
        self,
        embedding: Sequence[float],
        k: int,
        *,
        where: dict[str, Any] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest `k` (chunk_id, cosine similarity) best first, restricted by `where` and/or `ids`."""
        if k <= 0:
            return []
        kwargs: dict[str, Any] = {}
        if where:
            kwargs["where"] = where
        if ids is not None:
            if not ids:
                return []
            kwargs["ids"] = list(ids)
        query: list[Sequence[float]] = [list(embedding)]
        res = self._col.query(query_embeddings=query, n_results=k, include=["distances"], **kwargs)
        out_ids = res["ids"][0] if res["ids"] else []
        dists = (res.get("distances") or [[]])[0] or []
        return [(cid, 1.0 - float(d)) for cid, d in zip(out_ids, dists, strict=False)]

    def get_embeddings(self, ids: Sequence[str]) -> dict[str, list[float]]:
        """Stored vectors for `ids` (missing ids are absent from the result)."""
        if not ids:
            return {}
        res = self._col.get(ids=list(ids), include=["embeddings"])
        embs = res.get("embeddings")
        if embs is None:
            return {}
        return {cid: [float(x) for x in e] for cid, e in zip(res["ids"], embs, strict=False)}

    def close(self) -> None:
        """Release the client. Chroma shares one System per path inside a process and stops it when its last
        client closes; without this, a later open in this process would serve a stale in-memory copy of data
        another process has changed since."""
        client, self._client, self._col = self._client, None, None  # type: ignore[assignment]
        closer = getattr(client, "close", None)
        if callable(closer):
            closer()
