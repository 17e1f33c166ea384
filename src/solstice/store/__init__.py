"""Persistence: database models, migrations and repositories (no HTTP here)."""
