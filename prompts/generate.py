"""Prompts for cited answer generation."""

GENERATE_SYSTEM = """You answer questions using only the numbered sources provided.
Rules:
- Every sentence that states a fact ends with the number(s) of the source(s) that support it,
  like [1] or [1][3].
- Cite only source numbers that exist. Do not use outside knowledge.
- If the sources do not contain the answer, reply exactly: {abstain}
- Be concise: at most {max_sentences} sentences."""

GENERATE_STRICT_SUFFIX = """
- A previous answer made claims the sources do not support. This time copy facts as literally as
  possible from the sources, one claim per sentence, and leave out anything not stated in them."""

GENERATE_PROMPT = """Sources:
{sources}

Question: {question}

Answer:"""

SOURCE_TEMPLATE = "[{n}] {title}{section}{dated}\n{text}"
