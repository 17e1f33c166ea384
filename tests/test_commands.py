import pytest

from solstice.commands import CommandError, FileCommand, GrpcCommand, OciCommand, parse_command


def test_file_command_keeps_absolute_path() -> None:
    assert parse_command("file:///usr/local/bin/my-plugin") == FileCommand("/usr/local/bin/my-plugin")


def test_grpc_commands() -> None:
    assert parse_command("grpc://plugin-server:50051") == GrpcCommand("plugin-server", 50051)
    cmd = parse_command("grpc://[::1]:7000")
    assert isinstance(cmd, GrpcCommand)
    assert cmd.target == "[::1]:7000"
    assert str(parse_command("grpc://my-plugin.default.svc.cluster.local:50051/")).endswith(":50051")


def test_oci_command_is_recognised() -> None:
    command = parse_command("oci://registry.example.com/plugins/p:v1")
    assert isinstance(command, OciCommand)
    assert (command.reference.registry, command.reference.repository) == ("registry.example.com", "plugins/p")
    assert str(command) == "oci://registry.example.com/plugins/p:v1"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("file://./my-plugin", "file:///usr/local/bin/my-plugin"),
        ("/usr/local/bin/my-plugin", "file:///usr/local/bin/my-plugin"),
        ("my-plugin", "is not a URL"),
        ("ftp://host/x", "unknown command scheme 'ftp'"),
        ("grpc://host", "needs a host and a port"),
        ("grpc://host:0", "not a number from 1 to 65535"),
        ("grpc://host:http", "not a number from 1 to 65535"),
        ("grpc://user:pw@host:1", "must not carry credentials"),
        ("grpc://host:1/extra", "nothing after the port"),
        ("file:///bin/x\n", "control characters"),
        ("file:///bin/%00x", "NUL byte"),
        ("file:///" + "a" * 3000, "the limit is 2048"),
        ("oci://", "names no image"),
    ],
)
def test_bad_commands_name_the_value_and_the_fix(raw: str, fragment: str) -> None:
    with pytest.raises(CommandError) as info:
        parse_command(raw)
    assert fragment in str(info.value)


def test_credentials_are_not_echoed() -> None:
    with pytest.raises(CommandError) as info:
        parse_command("grpc://admin:hunter2@host:1")
    assert "hunter2" not in str(info.value)
