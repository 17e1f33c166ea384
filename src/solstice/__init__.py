"""Solstice: a plugin platform and LLM gateway."""

__version__ = "0.1.0"
