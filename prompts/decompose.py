"""Prompt for multi-hop decomposition."""

DECOMPOSE_PROMPT = """Split the question into at most {n} simple sub-questions that can each be answered by
one passage. For a comparison, ask about each item separately. For a chain ("the director of the film
that ..."), ask the first hop, then the second hop using the words you expect the first answer to name.

Question: {question}

Reply with JSON only: a list of strings."""
