"""gRPC transport settings shared by hosts and plugins."""

# Bodies travel inside hook messages, so the limit must exceed the gateway's body limit.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]
