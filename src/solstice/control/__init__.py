"""Applies the desired plugin state in the store to the running host."""
