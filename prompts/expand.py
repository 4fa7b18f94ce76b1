"""Prompt for query expansion."""

EXPAND_PROMPT = """Write {n} different search queries that would find passages answering the question.
Use synonyms and the specific terms a document would use; keep each under 20 words.

Question: {question}

Reply with JSON only: a list of {n} strings."""
