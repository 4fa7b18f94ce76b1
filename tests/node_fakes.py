"""Offline fakes for node and graph tests: an in-memory index that records every search, a scripted chat
model that answers by prompt pattern (with usage metadata and token streaming), and a failing reranker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from ragroute.tools.errors import ProviderError
from ragroute.tools.types import AccessScope, Parent, SearchHit

_WORD = re.compile(r"\w+")


def _terms(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if len(w) > 2}


def allowed(meta: dict, access: AccessScope | None) -> bool:
    """The ACL rule of the index contract."""
    if access is None or access.unrestricted:
        return True
    groups = meta.get("access_groups") or []
    ok_group = not groups or bool(set(groups) & set(access.groups or []))
    return ok_group and int(meta.get("security_level", 0)) <= int(access.clearance or 0)


class FakeIndex:
    """Term-overlap search over (chunk_id, doc_id, text, metadata) rows; records each call's arguments."""

    def __init__(self, rows: list[tuple[str, str, str, dict]], parents: dict[str, str] | None = None) -> None:
        self.rows = rows
        self.parents = parents or {}
        self.calls: list[dict[str, Any]] = []

    def search(self, query: str, k: int = 10, *, filters=None, access=None, weights=None, candidate_k=None):
        """Hits ordered by shared terms (ties by row order), ACL and equality filters applied."""
        self.calls.append({"query": query, "k": k, "filters": filters, "access": access})
        q = _terms(query)
        scored = []
        for i, (cid, did, text, meta) in enumerate(self.rows):
            if not allowed(meta, access):
                continue
            if filters and any(meta.get(f) != v for f, v in filters.items() if not f.startswith("$")):
                continue
            score = len(q & _terms(text + " " + meta.get("title", ""))) / (1 + len(q))
            if score > 0:
                scored.append((score, -i, cid, did, text, meta))
        scored.sort(reverse=True)
        return [
            SearchHit(
                cid, did, text, s, dict(meta), {"dense": r + 1, "bm25": r + 1}, {}, meta.get("parent_id")
            )
            for r, (s, _, cid, did, text, meta) in enumerate(scored[:k])
        ]

    def get_parent(self, parent_id: str) -> Parent | None:
        """Parent text registered for the id."""
        text = self.parents.get(parent_id)
        return Parent(parent_id, parent_id.split("::")[0], text) if text else None


class ScriptedChatModel(BaseChatModel):
    """Replies with the first scripted answer whose pattern occurs in the prompt; records prompts."""

    script: list[tuple[str, str]]
    prompts: list[str] = []
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _reply(self, messages: list[BaseMessage]) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        self.prompts.append(prompt)
        if self.fail:
            raise RuntimeError("scripted outage")
        for pattern, answer in self.script:
            if pattern in prompt:
                return answer
        raise AssertionError(f"no scripted answer for prompt: {prompt[:200]!r}")

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kw: Any) -> ChatResult:
        text = self._reply(messages)
        usage = {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text, usage_metadata=usage))])

    def _stream(
        self, messages: list[BaseMessage], stop=None, run_manager=None, **kw: Any
    ) -> Iterator[ChatGenerationChunk]:
        text = self._reply(messages)
        pieces = re.findall(r"\S+\s*", text)
        for i, piece in enumerate(pieces):
            usage = (
                {"input_tokens": 100, "output_tokens": 20, "total_tokens": 120}
                if i == len(pieces) - 1
                else None
            )
            chunk = ChatGenerationChunk(message=AIMessageChunk(piece, usage_metadata=usage))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk


class FailingReranker:
    """A reranker whose provider is down."""

    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        self.calls += 1
        raise ProviderError("broken", "service unavailable")


class ReversingReranker:
    """A reranker that reverses the order (to see that reranking changed the context)."""

    name = "reverse"

    def rerank(self, query: str, hits: list[dict], top_n: int | None = None) -> list[dict]:
        out = [{**h, "rerank_score": float(i)} for i, h in enumerate(hits)]
        return list(reversed(out))[:top_n] if top_n else list(reversed(out))
