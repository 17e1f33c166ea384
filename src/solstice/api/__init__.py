"""The control plane's REST API (FastAPI): routes, auth and the problem details of its errors."""
