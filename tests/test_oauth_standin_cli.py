"""``python -m yaxmpp.testing.oauth``: the OAuth and REST stand-ins in a terminal, and the
``yaxmpp login`` line it prints, run as printed, gets a token that ``watch`` then uses."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from typing import Dict, List

from yaxmpp.testing import FakeServer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def _env(tmp_path: "os.PathLike[str]") -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=ROOT, XDG_CONFIG_HOME=str(tmp_path))
    env.pop("YANDEX_DISK_TOKEN", None)
    return env


def test_the_printed_login_line_stores_a_token_watch_connects_with(tmp_path: "os.PathLike[str]") -> None:
    env = _env(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "yaxmpp.testing.oauth", "--token", "standin-token-0123", "--interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        lines: List[str] = []
        while not any(line.startswith("Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, "the banner ended early: %r" % lines
            lines.append(line)
        login_line = next(line for line in lines if " yaxmpp login " in line).split()
        variable, _, secret = login_line[0].partition("=")
        assert variable == "YAXMPP_CLIENT_SECRET"
        argv = login_line[2:]  # after "yaxmpp"
        login = subprocess.run(
            [sys.executable, "-m", "yaxmpp", *argv], env=dict(env, YAXMPP_CLIENT_SECRET=shlex.split(secret)[0]),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert login.returncode == 0, login.stdout + login.stderr
        assert "Logged in as test" in login.stdout and "standin-token-0123" not in login.stdout + login.stderr
        with FakeServer(login="test", token="standin-token-0123") as server:
            options = server.client_options()
            doctor = subprocess.run(  # the stored credentials, as watch would use them
                [sys.executable, "-m", "yaxmpp", "doctor", "--credentials", first["credentials"], "--host", options["host"],
                 "--port", str(options["port"]), "--tls-port", "none", "--cafile", first["cafile"], "--timeout", "10"],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert doctor.returncode == 0, doctor.stdout + doctor.stderr
            assert "bound as test@ya.ru/" in doctor.stdout
            from yaxmpp import credentials

            stored = credentials.load(first["credentials"])
            assert stored is not None and stored.login == "test" and stored.access_token == "standin-token-0123"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0
