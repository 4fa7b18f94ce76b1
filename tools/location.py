"""Where an index lives when nobody says: one rule for the CLI, the server, the Python API and IndexConfig.

Kept apart from tools/index/ so light callers (the CLI's argument parsing, Context) need not import the
index package (numpy, chromadb).
"""

from __future__ import annotations

import os


def default_location() -> str:
    """$RAGROUTE_INDEX, else $RAGROUTE_INDEX_DIR, else ~/.ragroute/index (a folder, or a Milvus URL)."""
    return (
        os.environ.get("RAGROUTE_INDEX")
        or os.environ.get("RAGROUTE_INDEX_DIR")
        or os.path.join(os.path.expanduser("~"), ".ragroute", "index")
    )
