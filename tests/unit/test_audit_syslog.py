"""Where audit entries are copied for a SIEM (setting audit_syslog): the address forms
accepted and the facility used (issue 19: survivors of mutation testing)."""

from __future__ import annotations

import logging.handlers
import socket
from pathlib import Path

import pytest

from placeharm.audit.log import syslog_handler
from placeharm.errors import ConfigError

AUTHPRIV = 10  # syslog facility 10: security/authorisation messages (RFC 5424)


def test_udp_address_with_and_without_a_port():
    handler = syslog_handler("udp://127.0.0.1:5514")
    try:
        assert handler.address == ("127.0.0.1", 5514)
        assert handler.socktype == socket.SOCK_DGRAM
        assert handler.facility == AUTHPRIV == logging.handlers.SysLogHandler.LOG_AUTHPRIV
    finally:
        handler.close()
    handler = syslog_handler("udp://localhost")
    try:
        assert handler.address == ("localhost", 514)  # the syslog port when none is given
    finally:
        handler.close()


def test_tcp_address_connects_a_stream():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        handler = syslog_handler(f"tcp://127.0.0.1:{port}")
        try:
            assert handler.address == ("127.0.0.1", port)
            assert handler.socktype == socket.SOCK_STREAM
            assert handler.facility == AUTHPRIV
        finally:
            handler.close()


def test_unix_socket_path(tmp_path: Path):
    path = str(tmp_path / "log")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        handler = syslog_handler(path)
        try:
            assert handler.address == path
            assert handler.facility == AUTHPRIV
        finally:
            handler.close()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("udp://:514", "has no host"),
        ("tcp://", "has no host"),
        ("syslog.example:514", "is not valid"),
        ("relative/log", "is not valid"),
        ("http://syslog.example", "is not valid"),
    ],
)
def test_other_addresses_are_refused(address: str, message: str):
    with pytest.raises(ConfigError, match=message):
        syslog_handler(address)


def test_the_refusal_says_which_forms_work():
    with pytest.raises(ConfigError) as refused:
        syslog_handler("syslog.example:514")
    assert str(refused.value) == (
        "audit_syslog 'syslog.example:514' is not valid: use udp://host:port, tcp://host:port "
        "or a socket path such as /dev/log"
    )
