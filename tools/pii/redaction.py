"""PII redaction: typed placeholders (`<EMAIL_1>`) consistent within a document, its title and metadata;
reversible when the mapping is stored (ragroute.tools.pii.mapping)."""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ragroute.tools.errors import ConfigError
from ragroute.tools.pii.detection import PiiEntity, check_entities, detect_pii
from ragroute.tools.pii.mapping import KEY_ENV, KEYGEN_HINT, PiiMappingStore, mapping_id_for
from ragroute.tools.types import Document

_PLACEHOLDER_RE = re.compile(r"<([A-Z_]+)_(\d+)>")


@dataclass
class RedactionResult:
    """Redacted text, the entities found (spans in the original text) and where the mapping is stored."""

    text: str
    entities: list[PiiEntity] = field(default_factory=list)
    mapping_id: str | None = None

    def counts(self) -> dict[str, int]:
        """Number of entities per type."""
        out: dict[str, int] = {}
        for e in self.entities:
            out[e.type] = out.get(e.type, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe view without the original values."""
        return {
            "text": self.text,
            "entities": [e.to_dict() for e in self.entities],
            "mapping_id": self.mapping_id,
        }


# metadata keys whose values are identifiers or filter operands, never free text to redact
STRUCTURAL_METADATA = frozenset(
    {
        "doc_id",
        "parent_id",
        "chunk_index",
        "access_groups",
        "security_level",
        "version",
        "last_updated",
        "created_at",
        "updated_at",
        "doc_type",
        "language",
        "format",
        "source",
        "pii_counts",
        "pii_mapping_id",
    }
)


def _metadata_slots(meta: dict[str, Any]) -> list[tuple[str, int | None]]:
    """(key, list position or None) of every free-text string in `meta`: top-level values and strings in
    lists (lists are copied, so a later write never changes the caller's document)."""
    slots: list[tuple[str, int | None]] = []
    for key in sorted(meta, key=str):
        value = meta[key]
        if key in STRUCTURAL_METADATA:
            continue
        if isinstance(value, str):
            slots.append((key, None))
        elif isinstance(value, list | tuple):
            meta[key] = list(value)
            slots += [(key, i) for i, item in enumerate(value) if isinstance(item, str)]
    return slots


class PiiRedactor:
    """Replaces PII with typed placeholders (`<EMAIL_1>`), consistent within one document.

    With `store_path`, the placeholder->original mapping is stored encrypted (key from `key` or the
    RAGROUTE_PII_KEY environment variable) and `restore` can undo the redaction; without it the
    redaction is irreversible.
    """

    def __init__(
        self,
        entities: Iterable[str] | None = None,
        *,
        store_path: str | os.PathLike[str] | None = None,
        key: str | bytes | None = None,
    ) -> None:
        self.entities = check_entities(entities)
        self.store: PiiMappingStore | None = None
        if store_path is not None:
            key = key if key is not None else os.environ.get(KEY_ENV)
            if not key:
                raise ConfigError(
                    f"storing the PII mapping at {str(store_path)!r} needs an encryption key: set {KEY_ENV} "
                    f"to a Fernet key ({KEYGEN_HINT}), or use store_path=None to redact irreversibly"
                )
            self.store = PiiMappingStore(store_path, key)

    @property
    def reversible(self) -> bool:
        """True when mappings are stored and `restore` works."""
        return self.store is not None

    def detect(self, text: str) -> list[PiiEntity]:
        """PII spans in `text` for the configured entity types."""
        return detect_pii(text, self.entities)

    def redact(self, text: str, doc_id: str | None = None) -> RedactionResult:
        """Replace PII in `text`; store the mapping (when reversible) under an id derived from `doc_id`."""
        found = self.detect(text)
        literal = {m.group() for m in _PLACEHOLDER_RE.finditer(text)}
        assigned: dict[tuple[str, str], str] = {}
        counters: dict[str, int] = {}
        entities: list[PiiEntity] = []
        parts: list[str] = []
        pos = 0
        for ent in found:
            ph = assigned.get((ent.type, ent.text))
            if ph is None:
                n = counters.get(ent.type, 0)
                while True:
                    n += 1
                    ph = f"<{ent.type}_{n}>"
                    # never reuse a placeholder string that already occurs literally in the document
                    if ph not in literal:
                        break
                counters[ent.type] = n
                assigned[(ent.type, ent.text)] = ph
            parts.append(text[pos : ent.start])
            parts.append(ph)
            pos = ent.end
            entities.append(PiiEntity(ent.type, ent.start, ent.end, ent.text, ph))
        parts.append(text[pos:])
        redacted = "".join(parts)
        mapping_id = None
        if self.store is not None and entities:
            mapping_id = mapping_id_for(doc_id) if doc_id is not None else uuid.uuid4().hex
            self.store.save(mapping_id, {ph: orig for (_, orig), ph in assigned.items()})
        return RedactionResult(redacted, entities, mapping_id)

    def restore(self, text: str, mapping_id: str | None) -> str:
        """Put the original values back into (a part of) a redacted text; needs the encryption key."""
        if mapping_id is None:
            return text
        if self.store is None:
            raise ConfigError("this PiiRedactor has no store_path, so redactions cannot be restored")
        mapping = self.store.load(mapping_id)
        if not mapping:
            return text
        # placeholders never contain "<" or ">", so matches cannot overlap and one pass finds them all;
        # placeholder-like text that was in the original document is not in the mapping and stays as is
        return _PLACEHOLDER_RE.sub(lambda m: mapping.get(m.group(), m.group()), text)

    def forget(self, mapping_id: str) -> bool:
        """Delete a stored mapping (e.g. when its document is purged); True when one existed."""
        if self.store is None:
            return False
        return self.store.delete(mapping_id)

    def redact_document(self, doc: Document) -> tuple[Document, RedactionResult]:
        """A copy of `doc` with PII replaced in its title, its free-text metadata and its text (one
        placeholder set for all of them).

        Metadata strings (and strings inside lists) are redacted except under the structural keys of
        `STRUCTURAL_METADATA` (ids, ACL fields, versions, dates), which filters compare as they are. The
        copy's metadata records `pii_mapping_id` (when reversible) and `pii_counts`; entity spans in the
        result refer to "title\nvalue 1\n...\nvalue n\ntext" (newlines inside values read as spaces).
        """
        title = doc.title.replace("\n", " ")
        meta = dict(doc.metadata)
        slots = _metadata_slots(meta)
        values = [str(meta[k] if i is None else meta[k][i]).replace("\n", " ") for k, i in slots]
        res = self.redact("\n".join([title, *values, doc.text]), doc_id=doc.doc_id)
        # spans never contain a newline, so the first 1 + len(values) newlines still separate the parts
        parts = res.text.split("\n", 1 + len(values))
        new_title, new_values, new_text = parts[0], parts[1:-1], parts[-1]
        for (key, pos), before, after in zip(slots, values, new_values, strict=True):
            if after == before:  # untouched values keep their exact form (newlines included)
                continue
            if pos is None:
                meta[key] = after
            else:
                meta[key][pos] = after
        meta["pii_counts"] = res.counts()
        if res.mapping_id is not None:
            meta["pii_mapping_id"] = res.mapping_id
        return dataclasses.replace(doc, title=new_title, text=new_text, metadata=meta), res

    def redact_query(self, query: str) -> str:
        """Irreversibly redact a query (before it reaches logs, traces or a remote provider)."""
        return redact_query(query, self.entities)


def redact_query(query: str, entities: Iterable[str] | None = None) -> str:
    """Query-time redaction: typed placeholders, nothing stored."""
    return PiiRedactor(entities).redact(query).text
