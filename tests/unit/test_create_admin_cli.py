"""``crowdpack staff create-admin`` refuses a password the service would refuse before it creates anyone, so a
mistyped password leaves no password-less super admin behind to block the retry."""

from __future__ import annotations

import io
import socket

from services.customer.sessions.cli import create_admin


def test_a_short_password_is_refused_before_the_service_is_called(monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on: calling it would fail with UNAVAILABLE instead
        s.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    args = type("Args", (), {"password_stdin": True, "phone": "13800000000", "name": "超级管理员",
                             "customer": nobody})()
    assert create_admin(args) == 1
    assert capsys.readouterr().err.strip() == "error: password: must be 10 to 128 characters"
