"""ragroute: agentic RAG query orchestration on LangGraph, offline by default.

The public API. Names are loaded on first use (PEP 562), so `import ragroute` stays cheap and
`import ragroute.tools.bm25` does not open Chroma or load a model:

    import ragroute
    out = ragroute.ask("How long can an API token live?", index_dir="~/.ragroute/index")
    ragroute.graph.invoke({"question": "..."}, context=ragroute.Context(index_dir="..."))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ below loads them
    from langgraph.graph.state import CompiledStateGraph
    from ragroute.api import aask, ask, astream, feedback
    from ragroute.context import Context
    from ragroute.runtime.providers import Providers
    from ragroute.tools.errors import (
        ConfigError,
        FilterError,
        IndexError_,
        IngestError,
        InputError,
        ProviderError,
        RagrouteError,
    )
    from ragroute.tools.index import HybridIndex, open_index
    from ragroute.tools.ingest import aingest_documents, ingest_documents
    from ragroute.tools.lc_vectorstore import IndexVectorStore
    from ragroute.tools.retrieval_tools import HybridRetriever, make_retrieval_tools
    from ragroute.workflow import build_graph

    graph: CompiledStateGraph

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "ask": "ragroute.api",
    "aask": "ragroute.api",
    "astream": "ragroute.api",
    "feedback": "ragroute.api",
    "build_graph": "ragroute.workflow",
    "graph": "ragroute.workflow",
    "Context": "ragroute.context",
    "Providers": "ragroute.runtime.providers",
    "open_index": "ragroute.tools.index",
    "HybridIndex": "ragroute.tools.index",
    "IndexVectorStore": "ragroute.tools.lc_vectorstore",
    "ingest_documents": "ragroute.tools.ingest",
    "aingest_documents": "ragroute.tools.ingest",
    "HybridRetriever": "ragroute.tools.retrieval_tools",
    "make_retrieval_tools": "ragroute.tools.retrieval_tools",
    "RagrouteError": "ragroute.tools.errors",
    "ConfigError": "ragroute.tools.errors",
    "InputError": "ragroute.tools.errors",
    "FilterError": "ragroute.tools.errors",
    "IngestError": "ragroute.tools.errors",
    "ProviderError": "ragroute.tools.errors",
    "IndexError_": "ragroute.tools.errors",
}

__all__ = [
    "ConfigError",
    "Context",
    "FilterError",
    "HybridIndex",
    "HybridRetriever",
    "IndexError_",
    "IndexVectorStore",
    "IngestError",
    "InputError",
    "ProviderError",
    "Providers",
    "RagrouteError",
    "__version__",
    "aask",
    "aingest_documents",
    "ask",
    "astream",
    "build_graph",
    "feedback",
    "graph",
    "ingest_documents",
    "make_retrieval_tools",
    "open_index",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ragroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
