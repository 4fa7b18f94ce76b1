"""Runnable examples of embedding ragroute in larger LangGraph / LangChain applications."""
