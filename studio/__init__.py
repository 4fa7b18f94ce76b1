"""LangGraph Studio configuration (langgraph.json) shipped with the package; see studio/README.md."""
