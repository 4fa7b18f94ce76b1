"""Token counting with tiktoken that works offline.

tiktoken downloads its BPE files on first use. `bpe-openai` ships the same files (byte-identical, so
tiktoken's hash check passes); we place them in tiktoken's cache layout before the first load.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import tiktoken
from ragroute.tools.errors import ConfigError

DEFAULT_ENCODING = "cl100k_base"
_BLOB_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _cache_dir() -> Path:
    """Where tiktoken looks for cached encodings: TIKTOKEN_CACHE_DIR, set to ours when unset."""
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragroute" / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def ensure_offline_encoding(name: str = DEFAULT_ENCODING) -> Path:
    """Put the bundled BPE file where tiktoken's cache expects it; return that path."""
    if name not in _BLOB_URLS:
        raise ConfigError(f"unknown tiktoken encoding {name!r}; options: {sorted(_BLOB_URLS)}")
    cache = _cache_dir()
    target = cache / hashlib.sha1(_BLOB_URLS[name].encode()).hexdigest()
    if not target.exists():
        packed = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(gzip.decompress(packed))
        os.replace(tmp, target)
    return target


@lru_cache(maxsize=4)
def encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded from the bundled file without network access."""
    ensure_offline_encoding(name)
    return tiktoken.get_encoding(name)


def count_tokens(text: str, name: str = DEFAULT_ENCODING) -> int:
    """Number of tokens `text` takes in encoding `name`."""
    return len(encoding(name).encode(text, disallowed_special=()))


def truncate_tokens(text: str, max_tokens: int, name: str = DEFAULT_ENCODING) -> str:
    """`text` cut to at most `max_tokens` tokens."""
    enc = encoding(name)
    ids = enc.encode(text, disallowed_special=())
    return text if len(ids) <= max_tokens else enc.decode(ids[:max_tokens])
