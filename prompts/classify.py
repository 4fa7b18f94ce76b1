"""Prompt for routing a question."""

CLASSIFY_PROMPT = """Decide how to retrieve evidence for a question.
Routes:
- "simple": one lookup answers it (a fact, a definition, a claim about one thing).
- "expand": vague, short or under-specified; needs rephrasing to find the right text.
- "multihop": needs facts about two or more things (comparisons) or a chain (the X of the Y that ...).

Question: {question}

Reply with JSON only: {{"route": "simple" | "expand" | "multihop", "reason": "<one short sentence>"}}"""
