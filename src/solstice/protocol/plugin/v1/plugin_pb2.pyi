from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hook(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOOK_UNSPECIFIED: _ClassVar[Hook]
    HOOK_PRE_AUTH: _ClassVar[Hook]
    HOOK_AUTH: _ClassVar[Hook]
    HOOK_POST_AUTH: _ClassVar[Hook]
    HOOK_ON_RESPONSE: _ClassVar[Hook]
    HOOK_DATA_COLLECTION: _ClassVar[Hook]
    HOOK_CUSTOM_ENDPOINT: _ClassVar[Hook]
    HOOK_SCHEDULED_TASK: _ClassVar[Hook]
    HOOK_OBJECT_HOOKS: _ClassVar[Hook]
    HOOK_AGENT: _ClassVar[Hook]

class ResponsePhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_PHASE_UNSPECIFIED: _ClassVar[ResponsePhase]
    RESPONSE_PHASE_COMPLETE: _ClassVar[ResponsePhase]
    RESPONSE_PHASE_STREAM_CHUNK: _ClassVar[ResponsePhase]
    RESPONSE_PHASE_STREAM_END: _ClassVar[ResponsePhase]

class AgentChunkType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_CHUNK_UNSPECIFIED: _ClassVar[AgentChunkType]
    AGENT_CHUNK_CONTENT: _ClassVar[AgentChunkType]
    AGENT_CHUNK_TOOL_CALL: _ClassVar[AgentChunkType]
    AGENT_CHUNK_TOOL_RESULT: _ClassVar[AgentChunkType]
    AGENT_CHUNK_THINKING: _ClassVar[AgentChunkType]
    AGENT_CHUNK_ERROR: _ClassVar[AgentChunkType]
    AGENT_CHUNK_DONE: _ClassVar[AgentChunkType]
HOOK_UNSPECIFIED: Hook
HOOK_PRE_AUTH: Hook
HOOK_AUTH: Hook
HOOK_POST_AUTH: Hook
HOOK_ON_RESPONSE: Hook
HOOK_DATA_COLLECTION: Hook
HOOK_CUSTOM_ENDPOINT: Hook
HOOK_SCHEDULED_TASK: Hook
HOOK_OBJECT_HOOKS: Hook
HOOK_AGENT: Hook
RESPONSE_PHASE_UNSPECIFIED: ResponsePhase
RESPONSE_PHASE_COMPLETE: ResponsePhase
RESPONSE_PHASE_STREAM_CHUNK: ResponsePhase
RESPONSE_PHASE_STREAM_END: ResponsePhase
AGENT_CHUNK_UNSPECIFIED: AgentChunkType
AGENT_CHUNK_CONTENT: AgentChunkType
AGENT_CHUNK_TOOL_CALL: AgentChunkType
AGENT_CHUNK_TOOL_RESULT: AgentChunkType
AGENT_CHUNK_THINKING: AgentChunkType
AGENT_CHUNK_ERROR: AgentChunkType
AGENT_CHUNK_DONE: AgentChunkType

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "description", "hooks", "config_schema_json", "wants_stream_chunks", "endpoints", "scopes", "schedules", "object_hooks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    WANTS_STREAM_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    OBJECT_HOOKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    hooks: _containers.RepeatedScalarFieldContainer[Hook]
    config_schema_json: str
    wants_stream_chunks: bool
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    object_hooks: _containers.RepeatedCompositeFieldContainer[ObjectHookRegistration]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., hooks: _Optional[_Iterable[_Union[Hook, str]]] = ..., config_schema_json: _Optional[str] = ..., wants_stream_chunks: _Optional[bool] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., scopes: _Optional[_Iterable[str]] = ..., schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ..., object_hooks: _Optional[_Iterable[_Union[ObjectHookRegistration, _Mapping]]] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("config_json", "plugin_slug", "config_id")
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_SLUG_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    config_json: str
    plugin_slug: str
    config_id: str
    def __init__(self, config_json: _Optional[str] = ..., plugin_slug: _Optional[str] = ..., config_id: _Optional[str] = ...) -> None: ...

class ConfigureResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class LLM(_message.Message):
    __slots__ = ("id", "slug", "vendor")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    slug: str
    vendor: str
    def __init__(self, id: _Optional[str] = ..., slug: _Optional[str] = ..., vendor: _Optional[str] = ...) -> None: ...

class App(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class TraceContext(_message.Message):
    __slots__ = ("traceparent", "tracestate")
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class RequestContext(_message.Message):
    __slots__ = ("request_id", "llm", "app", "user_id", "metadata", "trace", "config_id", "calling_plugin")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    CALLING_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    llm: LLM
    app: App
    user_id: str
    metadata: _containers.ScalarMap[str, str]
    trace: TraceContext
    config_id: str
    calling_plugin: str
    def __init__(self, request_id: _Optional[str] = ..., llm: _Optional[_Union[LLM, _Mapping]] = ..., app: _Optional[_Union[App, _Mapping]] = ..., user_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., trace: _Optional[_Union[TraceContext, _Mapping]] = ..., config_id: _Optional[str] = ..., calling_plugin: _Optional[str] = ...) -> None: ...

class HttpRequest(_message.Message):
    __slots__ = ("method", "path", "query", "headers", "body", "remote_addr")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    query: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    remote_addr: str
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., query: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., remote_addr: _Optional[str] = ...) -> None: ...

class HttpResponse(_message.Message):
    __slots__ = ("status", "headers", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class Continue(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Modify(_message.Message):
    __slots__ = ("set_headers", "remove_headers", "replace_body", "body")
    SET_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REMOVE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_BODY_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    set_headers: _containers.RepeatedCompositeFieldContainer[Header]
    remove_headers: _containers.RepeatedScalarFieldContainer[str]
    replace_body: bool
    body: bytes
    def __init__(self, set_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., remove_headers: _Optional[_Iterable[str]] = ..., replace_body: _Optional[bool] = ..., body: _Optional[bytes] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("status", "headers", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class HookResponse(_message.Message):
    __slots__ = ("proceed", "modify", "block", "metadata_updates")
    class MetadataUpdatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROCEED_FIELD_NUMBER: _ClassVar[int]
    MODIFY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    METADATA_UPDATES_FIELD_NUMBER: _ClassVar[int]
    proceed: Continue
    modify: Modify
    block: Block
    metadata_updates: _containers.ScalarMap[str, str]
    def __init__(self, proceed: _Optional[_Union[Continue, _Mapping]] = ..., modify: _Optional[_Union[Modify, _Mapping]] = ..., block: _Optional[_Union[Block, _Mapping]] = ..., metadata_updates: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PreAuthRequest(_message.Message):
    __slots__ = ("context", "request")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    request: HttpRequest
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., request: _Optional[_Union[HttpRequest, _Mapping]] = ...) -> None: ...

class AuthRequest(_message.Message):
    __slots__ = ("context", "request", "credential")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    request: HttpRequest
    credential: str
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., request: _Optional[_Union[HttpRequest, _Mapping]] = ..., credential: _Optional[str] = ...) -> None: ...

class Authenticated(_message.Message):
    __slots__ = ("app_id", "user_id", "claims")
    class ClaimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    user_id: str
    claims: _containers.ScalarMap[str, str]
    def __init__(self, app_id: _Optional[str] = ..., user_id: _Optional[str] = ..., claims: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Rejected(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Abstain(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AuthResponse(_message.Message):
    __slots__ = ("abstain", "authenticated", "rejected", "metadata_updates")
    class MetadataUpdatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ABSTAIN_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    METADATA_UPDATES_FIELD_NUMBER: _ClassVar[int]
    abstain: Abstain
    authenticated: Authenticated
    rejected: Rejected
    metadata_updates: _containers.ScalarMap[str, str]
    def __init__(self, abstain: _Optional[_Union[Abstain, _Mapping]] = ..., authenticated: _Optional[_Union[Authenticated, _Mapping]] = ..., rejected: _Optional[_Union[Rejected, _Mapping]] = ..., metadata_updates: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PostAuthRequest(_message.Message):
    __slots__ = ("context", "request")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    request: HttpRequest
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., request: _Optional[_Union[HttpRequest, _Mapping]] = ...) -> None: ...

class OnResponseRequest(_message.Message):
    __slots__ = ("context", "request", "response", "phase", "chunk_index")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    request: HttpRequest
    response: HttpResponse
    phase: ResponsePhase
    chunk_index: int
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., request: _Optional[_Union[HttpRequest, _Mapping]] = ..., response: _Optional[_Union[HttpResponse, _Mapping]] = ..., phase: _Optional[_Union[ResponsePhase, str]] = ..., chunk_index: _Optional[int] = ...) -> None: ...

class ProxyRecord(_message.Message):
    __slots__ = ("context", "timestamp_unix_ms", "method", "path", "status", "latency_ms", "model", "prompt_tokens", "completion_tokens", "total_tokens", "request_body", "response_body", "truncated")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    timestamp_unix_ms: int
    method: str
    path: str
    status: int
    latency_ms: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    request_body: bytes
    response_body: bytes
    truncated: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., timestamp_unix_ms: _Optional[int] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., status: _Optional[int] = ..., latency_ms: _Optional[int] = ..., model: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., request_body: _Optional[bytes] = ..., response_body: _Optional[bytes] = ..., truncated: _Optional[bool] = ...) -> None: ...

class DataCollectionRequest(_message.Message):
    __slots__ = ("records", "config_id")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_ID_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[ProxyRecord]
    config_id: str
    def __init__(self, records: _Optional[_Iterable[_Union[ProxyRecord, _Mapping]]] = ..., config_id: _Optional[str] = ...) -> None: ...

class DataCollectionResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("path", "methods", "description", "require_auth", "stream")
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_AUTH_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    path: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    description: str
    require_auth: bool
    stream: bool
    def __init__(self, path: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., require_auth: _Optional[bool] = ..., stream: _Optional[bool] = ...) -> None: ...

class EndpointRequest(_message.Message):
    __slots__ = ("context", "request", "route", "params", "authenticated")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    request: HttpRequest
    route: str
    params: _containers.ScalarMap[str, str]
    authenticated: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., request: _Optional[_Union[HttpRequest, _Mapping]] = ..., route: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., authenticated: _Optional[bool] = ...) -> None: ...

class EndpointChunk(_message.Message):
    __slots__ = ("head", "body")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    head: HttpResponse
    body: bytes
    def __init__(self, head: _Optional[_Union[HttpResponse, _Mapping]] = ..., body: _Optional[bytes] = ...) -> None: ...

class HostMessage(_message.Message):
    __slots__ = ("hello", "reply")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    hello: HostHello
    reply: ServiceReply
    def __init__(self, hello: _Optional[_Union[HostHello, _Mapping]] = ..., reply: _Optional[_Union[ServiceReply, _Mapping]] = ...) -> None: ...

class HostHello(_message.Message):
    __slots__ = ("plugin_slug", "link")
    PLUGIN_SLUG_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    plugin_slug: str
    link: str
    def __init__(self, plugin_slug: _Optional[str] = ..., link: _Optional[str] = ...) -> None: ...

class ServiceCall(_message.Message):
    __slots__ = ("id", "kv_get", "kv_put", "kv_delete", "kv_list", "llms_list", "llms_get", "apps_list", "apps_get", "llms_call", "events_publish", "cancel")
    ID_FIELD_NUMBER: _ClassVar[int]
    KV_GET_FIELD_NUMBER: _ClassVar[int]
    KV_PUT_FIELD_NUMBER: _ClassVar[int]
    KV_DELETE_FIELD_NUMBER: _ClassVar[int]
    KV_LIST_FIELD_NUMBER: _ClassVar[int]
    LLMS_LIST_FIELD_NUMBER: _ClassVar[int]
    LLMS_GET_FIELD_NUMBER: _ClassVar[int]
    APPS_LIST_FIELD_NUMBER: _ClassVar[int]
    APPS_GET_FIELD_NUMBER: _ClassVar[int]
    LLMS_CALL_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PUBLISH_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    kv_get: KvGet
    kv_put: KvPut
    kv_delete: KvDelete
    kv_list: KvList
    llms_list: ListRequest
    llms_get: GetRequest
    apps_list: ListRequest
    apps_get: GetRequest
    llms_call: LlmCall
    events_publish: Event
    cancel: int
    def __init__(self, id: _Optional[int] = ..., kv_get: _Optional[_Union[KvGet, _Mapping]] = ..., kv_put: _Optional[_Union[KvPut, _Mapping]] = ..., kv_delete: _Optional[_Union[KvDelete, _Mapping]] = ..., kv_list: _Optional[_Union[KvList, _Mapping]] = ..., llms_list: _Optional[_Union[ListRequest, _Mapping]] = ..., llms_get: _Optional[_Union[GetRequest, _Mapping]] = ..., apps_list: _Optional[_Union[ListRequest, _Mapping]] = ..., apps_get: _Optional[_Union[GetRequest, _Mapping]] = ..., llms_call: _Optional[_Union[LlmCall, _Mapping]] = ..., events_publish: _Optional[_Union[Event, _Mapping]] = ..., cancel: _Optional[int] = ...) -> None: ...

class ServiceReply(_message.Message):
    __slots__ = ("id", "more", "error", "kv_value", "kv_written", "kv_keys", "llms", "llm", "apps", "app", "llm_call", "event")
    ID_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    KV_VALUE_FIELD_NUMBER: _ClassVar[int]
    KV_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    KV_KEYS_FIELD_NUMBER: _ClassVar[int]
    LLMS_FIELD_NUMBER: _ClassVar[int]
    LLM_FIELD_NUMBER: _ClassVar[int]
    APPS_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    LLM_CALL_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    more: bool
    error: ServiceError
    kv_value: KvValue
    kv_written: KvWritten
    kv_keys: KvKeys
    llms: LlmList
    llm: LlmInfo
    apps: AppList
    app: AppInfo
    llm_call: LlmCallPart
    event: EventPublished
    def __init__(self, id: _Optional[int] = ..., more: _Optional[bool] = ..., error: _Optional[_Union[ServiceError, _Mapping]] = ..., kv_value: _Optional[_Union[KvValue, _Mapping]] = ..., kv_written: _Optional[_Union[KvWritten, _Mapping]] = ..., kv_keys: _Optional[_Union[KvKeys, _Mapping]] = ..., llms: _Optional[_Union[LlmList, _Mapping]] = ..., llm: _Optional[_Union[LlmInfo, _Mapping]] = ..., apps: _Optional[_Union[AppList, _Mapping]] = ..., app: _Optional[_Union[AppInfo, _Mapping]] = ..., llm_call: _Optional[_Union[LlmCallPart, _Mapping]] = ..., event: _Optional[_Union[EventPublished, _Mapping]] = ...) -> None: ...

class ServiceError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class KvGet(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class KvValue(_message.Message):
    __slots__ = ("found", "value", "expires_unix_ms")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    expires_unix_ms: int
    def __init__(self, found: _Optional[bool] = ..., value: _Optional[bytes] = ..., expires_unix_ms: _Optional[int] = ...) -> None: ...

class KvPut(_message.Message):
    __slots__ = ("key", "value", "ttl_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    ttl_ms: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class KvDelete(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class KvWritten(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class KvList(_message.Message):
    __slots__ = ("prefix", "limit", "page_token")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    limit: int
    page_token: str
    def __init__(self, prefix: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class KvKey(_message.Message):
    __slots__ = ("key", "size", "expires_unix_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    expires_unix_ms: int
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ..., expires_unix_ms: _Optional[int] = ...) -> None: ...

class KvKeys(_message.Message):
    __slots__ = ("keys", "next_page_token")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KvKey]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[KvKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class LlmInfo(_message.Message):
    __slots__ = ("id", "slug", "name", "vendor", "upstream_url", "is_active")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_URL_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    id: str
    slug: str
    name: str
    vendor: str
    upstream_url: str
    is_active: bool
    def __init__(self, id: _Optional[str] = ..., slug: _Optional[str] = ..., name: _Optional[str] = ..., vendor: _Optional[str] = ..., upstream_url: _Optional[str] = ..., is_active: _Optional[bool] = ...) -> None: ...

class LlmList(_message.Message):
    __slots__ = ("llms",)
    LLMS_FIELD_NUMBER: _ClassVar[int]
    llms: _containers.RepeatedCompositeFieldContainer[LlmInfo]
    def __init__(self, llms: _Optional[_Iterable[_Union[LlmInfo, _Mapping]]] = ...) -> None: ...

class AppInfo(_message.Message):
    __slots__ = ("id", "name", "is_active", "llms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    LLMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    is_active: bool
    llms: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., is_active: _Optional[bool] = ..., llms: _Optional[_Iterable[str]] = ...) -> None: ...

class AppList(_message.Message):
    __slots__ = ("apps",)
    APPS_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[AppInfo]
    def __init__(self, apps: _Optional[_Iterable[_Union[AppInfo, _Mapping]]] = ...) -> None: ...

class LlmCall(_message.Message):
    __slots__ = ("llm", "path", "method", "headers", "body", "stream", "origin_request_id")
    LLM_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    llm: str
    path: str
    method: str
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    stream: bool
    origin_request_id: str
    def __init__(self, llm: _Optional[str] = ..., path: _Optional[str] = ..., method: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., stream: _Optional[bool] = ..., origin_request_id: _Optional[str] = ...) -> None: ...

class LlmCallPart(_message.Message):
    __slots__ = ("status", "headers", "body")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.RepeatedCompositeFieldContainer[Header]
    body: bytes
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., body: _Optional[bytes] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("type", "data_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    data_json: str
    def __init__(self, type: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class EventPublished(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("id", "name", "cron", "timezone", "timeout_seconds", "config_json", "catch_up")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    cron: str
    timezone: str
    timeout_seconds: int
    config_json: str
    catch_up: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ..., timezone: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., config_json: _Optional[str] = ..., catch_up: _Optional[bool] = ...) -> None: ...

class TaskRequest(_message.Message):
    __slots__ = ("context", "schedule_id", "schedule_name", "config_json", "due_unix_ms", "catch_up")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    DUE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    schedule_id: str
    schedule_name: str
    config_json: str
    due_unix_ms: int
    catch_up: bool
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., schedule_id: _Optional[str] = ..., schedule_name: _Optional[str] = ..., config_json: _Optional[str] = ..., due_unix_ms: _Optional[int] = ..., catch_up: _Optional[bool] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("error", "message")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error: str
    message: str
    def __init__(self, error: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ObjectHookRegistration(_message.Message):
    __slots__ = ("object_type", "events", "priority")
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    object_type: str
    events: _containers.RepeatedScalarFieldContainer[str]
    priority: int
    def __init__(self, object_type: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., priority: _Optional[int] = ...) -> None: ...

class ObjectHookRequest(_message.Message):
    __slots__ = ("context", "event", "object_type", "object_json", "previous_json", "actor", "delivery_id")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    event: str
    object_type: str
    object_json: str
    previous_json: str
    actor: str
    delivery_id: str
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., event: _Optional[str] = ..., object_type: _Optional[str] = ..., object_json: _Optional[str] = ..., previous_json: _Optional[str] = ..., actor: _Optional[str] = ..., delivery_id: _Optional[str] = ...) -> None: ...

class ObjectHookResponse(_message.Message):
    __slots__ = ("allow", "reject", "modify")
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    MODIFY_FIELD_NUMBER: _ClassVar[int]
    allow: AllowObject
    reject: RejectObject
    modify: ModifyObject
    def __init__(self, allow: _Optional[_Union[AllowObject, _Mapping]] = ..., reject: _Optional[_Union[RejectObject, _Mapping]] = ..., modify: _Optional[_Union[ModifyObject, _Mapping]] = ...) -> None: ...

class AllowObject(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RejectObject(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ModifyObject(_message.Message):
    __slots__ = ("object_json",)
    OBJECT_JSON_FIELD_NUMBER: _ClassVar[int]
    object_json: str
    def __init__(self, object_json: _Optional[str] = ...) -> None: ...

class AgentTurn(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class AgentRequest(_message.Message):
    __slots__ = ("context", "session_id", "message", "history", "llms")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    LLMS_FIELD_NUMBER: _ClassVar[int]
    context: RequestContext
    session_id: str
    message: str
    history: _containers.RepeatedCompositeFieldContainer[AgentTurn]
    llms: _containers.RepeatedCompositeFieldContainer[LlmInfo]
    def __init__(self, context: _Optional[_Union[RequestContext, _Mapping]] = ..., session_id: _Optional[str] = ..., message: _Optional[str] = ..., history: _Optional[_Iterable[_Union[AgentTurn, _Mapping]]] = ..., llms: _Optional[_Iterable[_Union[LlmInfo, _Mapping]]] = ...) -> None: ...

class AgentChunk(_message.Message):
    __slots__ = ("type", "content", "metadata_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: AgentChunkType
    content: str
    metadata_json: str
    def __init__(self, type: _Optional[_Union[AgentChunkType, str]] = ..., content: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...
