"""Tests and fixtures for the OCI registry client, against a real CNCF distribution registry."""
