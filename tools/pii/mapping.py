"""Reversible PII redaction: placeholder->original mappings, Fernet-encrypted, one file per mapping id."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

from ragroute.tools.errors import ConfigError, InputError

KEY_ENV = "RAGROUTE_PII_KEY"
KEYGEN_HINT = '`python -c "from ragroute.tools.pii import generate_key; print(generate_key())"`'
_MAPPING_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def mapping_id_for(doc_id: str) -> str:
    """Stable mapping id for a document id (re-redacting a document replaces its mapping)."""
    return "doc-" + hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:32]


def generate_key() -> str:
    """A fresh Fernet key suitable for RAGROUTE_PII_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class PiiMappingStore:
    """Placeholder->original mappings, one Fernet-encrypted file per mapping id, written atomically."""

    def __init__(self, path: str | os.PathLike[str], key: str | bytes) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError as exc:  # pragma: no cover - cryptography is a declared dependency of [pii]
            raise ConfigError("PII mapping storage needs 'cryptography': pip install ragroute[pii]") from exc
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{KEY_ENV} is not a valid Fernet key (32 url-safe base64 bytes); generate one with "
                f"{KEYGEN_HINT}"
            ) from exc
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"PII store path {str(self.path)!r} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)

    def _file(self, mapping_id: str) -> Path:
        if not isinstance(mapping_id, str) or not _MAPPING_ID_RE.match(mapping_id):
            raise InputError(f"invalid PII mapping id {mapping_id!r}; expected [A-Za-z0-9_-]{{1,128}}")
        return self.path / f"{mapping_id}.pii"

    def save(self, mapping_id: str, mapping: dict[str, str]) -> None:
        """Encrypt and store `mapping` under `mapping_id` (replacing any previous one)."""
        target = self._file(mapping_id)
        token = self._fernet.encrypt(json.dumps(mapping, ensure_ascii=False).encode("utf-8"))
        tmp = target.with_suffix(f".tmp-{uuid.uuid4().hex}")
        tmp.write_bytes(token)
        os.replace(tmp, target)

    def load(self, mapping_id: str) -> dict[str, str]:
        """Decrypt the mapping stored under `mapping_id`."""
        from cryptography.fernet import InvalidToken

        target = self._file(mapping_id)
        if not target.exists():
            raise InputError(f"unknown PII mapping id {mapping_id!r} in {str(self.path)!r}")
        try:
            data = self._fernet.decrypt(target.read_bytes())
        except InvalidToken as exc:
            raise ConfigError(
                f"cannot decrypt PII mapping {mapping_id!r}: {KEY_ENV} differs from the key used to store it"
            ) from exc
        return dict(json.loads(data.decode("utf-8")))

    def delete(self, mapping_id: str) -> bool:
        """Remove a stored mapping; True when one existed."""
        target = self._file(mapping_id)
        if target.exists():
            target.unlink()
            return True
        return False
