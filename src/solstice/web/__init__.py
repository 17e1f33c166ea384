"""HTTP pieces both runtimes serve with: the request-context middleware and the proxy route."""
