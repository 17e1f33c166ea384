"""The data plane: the LLM proxy at /llm/{slug}/ and the plugin hook pipeline."""
