"""Prometheus metrics, each defined once; /metrics renders the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Hook calls are sub-millisecond to seconds: buckets from 100 µs to 10 s.
_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    10,
)

HOOK_DURATION = Histogram(
    "solstice_plugin_hook_duration_seconds",
    "Duration of plugin hook calls, errors included.",
    ["plugin", "hook"],
    buckets=_LATENCY_BUCKETS,
)
HOOK_ERRORS = Counter(
    "solstice_plugin_hook_errors_total",
    "Plugin hook calls that failed, by gRPC status code.",
    ["plugin", "hook", "code"],
)
HOOK_TIMEOUTS = Counter(
    "solstice_plugin_hook_timeouts_total",
    "Plugin hook calls that exceeded the plugin's deadline.",
    ["plugin", "hook"],
)
PLUGIN_RESTARTS = Counter(
    "solstice_plugin_restarts_total",
    "Automatic restarts of crashed or hung local plugins.",
    ["plugin"],
)
PLUGIN_START_FAILURES = Counter(
    "solstice_plugin_start_failures_total",
    "Plugin starts (load, reload or restart) that failed.",
    ["plugin"],
)
HTTP_REQUESTS = Counter(
    "solstice_http_requests_total",
    "HTTP requests served, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "solstice_http_request_duration_seconds",
    "Duration of HTTP requests, by route template.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
ENDPOINT_REQUESTS = Counter(
    "solstice_plugin_endpoint_requests_total",
    "Requests to plugins' custom endpoints, by plugin, declared route and status.",
    ["plugin", "route", "status"],
)
ENDPOINT_DURATION = Histogram(
    "solstice_plugin_endpoint_duration_seconds",
    "Time until a custom endpoint answered (its status and headers, for a streamed route).",
    ["plugin", "route"],
    buckets=_LATENCY_BUCKETS,
)
HOOK_FAIL_OPEN = Counter(
    "solstice_gateway_fail_open_total",
    "Plugin failures the gateway passed over because the plugin's policy is fail_open.",
    ["plugin", "hook"],
)
DATA_COLLECTION_DROPS = Counter(
    "solstice_data_collection_dropped_total",
    "Proxy records dropped because the data_collection queue was full.",
)
DATA_COLLECTION_FAILURES = Counter(
    "solstice_data_collection_failures_total",
    "data_collection batches a plugin did not accept (records lost for that plugin).",
    ["plugin"],
)
OCI_PULLS = Counter(
    "solstice_oci_pulls_total",
    "OCI plugin loads by outcome: pulled (downloaded), cached (served from the cache), failed.",
    ["registry", "result"],
)
OCI_CACHE_HITS = Counter(
    "solstice_oci_cache_hits_total",
    "OCI plugin loads answered from the local cache without downloading.",
    ["registry"],
)
OCI_PULL_BYTES = Counter(
    "solstice_oci_pull_bytes_total",
    "Bytes of verified blobs downloaded from OCI registries.",
    ["registry"],
)
OCI_CACHE_EVICTIONS = Counter(
    "solstice_oci_cache_evictions_total",
    "Cached OCI plugin executables removed to keep the cache under its size bound.",
)
EDGE_CONFIG_STALE = Gauge(
    "solstice_edge_config_stale",
    "1 while an edge serves a configuration it could not confirm with its control plane.",
)
EDGE_LAST_SYNC = Gauge(
    "solstice_edge_last_sync_timestamp_seconds",
    "When an edge last heard from its control plane (Unix time).",
)
EDGE_SYNC_FAILURES = Counter(
    "solstice_edge_sync_failures_total",
    "Sync requests of an edge that failed (control plane unreachable or refusing).",
)
SCHEDULE_RUNS = Counter(
    "solstice_schedule_runs_total",
    "Scheduled task runs by how they ended: succeeded, failed, timed_out or skipped.",
    ["plugin", "status"],
)
SCHEDULE_RUN_DURATION = Histogram(
    "solstice_schedule_run_duration_seconds",
    "Duration of scheduled task runs, failures included.",
    ["plugin"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600),
)
OBJECT_HOOK_CALLS = Counter(
    "solstice_object_hook_calls_total",
    "Object hook calls by plugin, event and outcome (allow, reject, modify, error; delivered for after_*).",
    ["plugin", "event", "outcome"],
)
OBJECT_HOOK_DROPPED = Counter(
    "solstice_object_hook_dropped_total",
    "after_* object hook notifications dropped: too old, or their plugin no longer hooks them.",
)
OBJECT_HOOK_BACKLOG = Gauge(
    "solstice_object_hook_backlog",
    "after_* object hook notifications waiting for delivery, as this server last counted them.",
)
AGENT_CHATS = Counter(
    "solstice_agent_chats_total",
    "Chat turns answered by agents, by how the answer ended: done, error (sent by the agent or its "
    "SDK), failed, timeout, incomplete (ended without done), malformed or disconnected (the client left).",
    ["plugin", "outcome"],
)
