"""The encrypted PII mappings ragroute.tools.ingest stores next to an index, in <index>/pii/."""

from __future__ import annotations

import os

from ragroute.tools.pii import mapping_id_for


def forget_pii(index_path: str, doc_id: str) -> None:
    """Remove the document's stored PII mapping, if any (a hard delete or purge forgets it)."""
    try:
        os.remove(os.path.join(index_path, "pii", f"{mapping_id_for(doc_id)}.pii"))
    except FileNotFoundError:
        pass
