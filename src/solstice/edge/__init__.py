"""The edge gateway: serves LLM traffic with plugins, configured by a control plane's snapshots."""
