"""Milvus index locations: parse the URL forms accepted wherever an index path is, and pick the local
state folder that goes with one.

- ``milvus://HOST:PORT/NAME``: a Milvus server or cluster (also ``milvus-lite server``), reached at
  ``http://HOST:PORT``; ``milvus+https://HOST:PORT/NAME`` for TLS. NAME (default ``ragroute``) prefixes the
  index's collections, so one server holds several indexes. A token, if the server needs one, comes from
  the environment (``MILVUS_TOKEN``), never from the URL.
- ``milvus:///ABS/PATH/FILE.db``: Milvus Lite in one local file (three slashes: no host);
  ``?name=NAME`` picks the prefix.

The index's state lives in Milvus, but other code keeps local files beside an index (threads.sqlite, PII
mapping files, feedback), so a Milvus index still has a local folder: ``$RAGROUTE_STATE_DIR/<slug>``,
default ``~/.ragroute/milvus/<slug>`` with slug ``<host>_<port>_<name>`` (``lite_<file>_<hash>_<name>``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from ragroute.tools.errors import ConfigError

SCHEMES = ("milvus", "milvus+https")
DEFAULT_NAME = "ragroute"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class MilvusLocation:
    """A parsed Milvus index location."""

    url: str  # as the user wrote it (normalized), shown as `index.location`
    uri: str  # what pymilvus.MilvusClient connects to: http(s)://host:port or a Lite file path
    name: str  # collection prefix
    lite_file: bool
    state_dir: str  # local folder for the files other code keeps beside an index


def is_milvus(location: object) -> bool:
    """True when `location` is a Milvus URL rather than a folder."""
    return isinstance(location, str) and location.split("://", 1)[0].lower() in SCHEMES and "://" in location


def _check_name(name: str, url: str) -> str:
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"Milvus index name {name!r} in {url!r} must be 1-64 characters of [A-Za-z0-9_], "
            "starting with a letter or '_'"
        )
    return name


def _state_dir(slug: str) -> str:
    root = os.environ.get("RAGROUTE_STATE_DIR") or os.path.join("~", ".ragroute", "milvus")
    return os.path.abspath(os.path.join(os.path.expanduser(root), re.sub(r"[^A-Za-z0-9_.-]", "_", slug)))


def parse_location(url: str) -> MilvusLocation:
    """Parse a Milvus URL (see the module docstring); ConfigError names what is wrong."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown index scheme {parts.scheme!r} in {url!r}; options: {', '.join(SCHEMES)}")
    query = parse_qs(parts.query)
    if not parts.netloc:  # milvus:///abs/path/file.db
        if scheme != "milvus" or not parts.path.startswith("/") or parts.path.endswith("/"):
            raise ConfigError(f"a Milvus Lite location is milvus:///ABSOLUTE/PATH/FILE.db, got {url!r}")
        path = os.path.abspath(parts.path)
        name = _check_name((query.get("name") or [DEFAULT_NAME])[0], url)
        stem = os.path.splitext(os.path.basename(path))[0]
        digest = hashlib.sha1(path.encode()).hexdigest()[:8]
        return MilvusLocation(
            url=f"milvus://{path}" + (f"?name={name}" if name != DEFAULT_NAME else ""),
            uri=path,
            name=name,
            lite_file=True,
            state_dir=_state_dir(f"lite_{stem}_{digest}_{name}"),
        )
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"bad port in Milvus location {url!r}: {exc}") from None
    if not host or parts.username or parts.password:
        raise ConfigError(
            f"a Milvus location is milvus://HOST:PORT/NAME (credentials go in MILVUS_TOKEN), got {url!r}"
        )
    port = port or 19530
    name = _check_name(parts.path.strip("/") or DEFAULT_NAME, url)
    http = "https" if scheme == "milvus+https" else "http"
    return MilvusLocation(
        url=f"{scheme}://{host}:{port}/{name}",
        uri=f"{http}://{host}:{port}",
        name=name,
        lite_file=False,
        state_dir=_state_dir(f"{host}_{port}_{name}"),
    )
