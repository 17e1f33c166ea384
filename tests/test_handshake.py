import pytest

from solstice.protocol.handshake import HandshakeError, HandshakeLine


def test_go_plugin_line_with_trailing_empty_field() -> None:
    line = HandshakeLine.parse("1|1|unix|/tmp/x/plugin913357480|grpc|\n")
    assert (line.network, line.address, line.protocol, line.server_cert) == (
        "unix",
        "/tmp/x/plugin913357480",
        "grpc",
        "",
    )
    assert line.target == "unix:/tmp/x/plugin913357480"


def test_five_field_tcp_line() -> None:
    line = HandshakeLine.parse("1|1|tcp|127.0.0.1:1234|grpc")
    assert line.target == "127.0.0.1:1234"
    assert not line.multiplex


def test_format_round_trips_and_keeps_field_six() -> None:
    line = HandshakeLine(network="unix", address="/tmp/s.sock")
    assert line.format() == "1|1|unix|/tmp/s.sock|grpc|"
    assert HandshakeLine.parse(line.format()) == line


def test_short_cert_field_is_ignored_and_mux_flag_read() -> None:
    line = HandshakeLine.parse("1|1|unix|/s|grpc|short|true")
    assert line.server_cert == ""
    assert line.multiplex


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hello world", "unrecognized handshake line"),
        ("2|1|unix|/s|grpc|", "core protocol version '2'"),
        ("1|99|unix|/s|grpc|", "protocol version 99"),
        ("1|x|unix|/s|grpc|", "invalid plugin protocol version 'x'"),
        ("1|1|udp|/s|grpc|", "unsupported network 'udp'"),
        ("1|1|unix||grpc|", "empty address"),
        ("1|1|unix|/s", "'netrpc'"),
        ("1|1|unix|/s|netrpc|", "only talks grpc"),
    ],
)
def test_bad_lines_are_refused_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(HandshakeError, match=None) as info:
        HandshakeLine.parse(text)
    assert fragment in str(info.value)
