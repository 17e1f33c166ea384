"""The command security policy: allowlist, internal-network rules, path rules, warnings."""
