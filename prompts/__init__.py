"""Prompt templates, one module per LLM step (UPPER_SNAKE strings with named {placeholders})."""
