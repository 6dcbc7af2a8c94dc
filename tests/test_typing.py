"""The package type-checks under ``mypy --strict``, and so does a script using the public API."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    os.environ.get("YAXMPP_TYPECHECK") == "0", reason="type check turned off (YAXMPP_TYPECHECK=0)"
)

USER_SCRIPT = textwrap.dedent(
    '''
    from typing import List, Optional, Union
    import yaxmpp

    def on_change(notification: Union[yaxmpp.Notification, yaxmpp.Resync]) -> None:
        for change in notification.changes:
            size: Optional[int] = change.size
            print(change.type, change.path, change.disk_path, size)
        if isinstance(notification, yaxmpp.Resync):
            changed: Optional[bool] = notification.revision_changed
            print(notification.since, notification.until, notification.reason, changed)
        else:
            print(notification.element.tag)

    def on_retry(error: yaxmpp.Error, attempt: int, delay: float) -> None:
        print(error, attempt, delay)

    policy = yaxmpp.Reconnect(initial=1.0, maximum=60.0, on_retry=on_retry)
    cap: float = policy.maximum
    limits = yaxmpp.Limits(max_stanza_bytes=1 << 20)
    client = yaxmpp.Client(
        "login", "token", reconnect=policy, limits=limits, on_notification=on_change,
        check_revision=True, api_url="https://127.0.0.1:1", api_timeout=5.0,
    )
    try:
        client.connect(timeout=10, retry=True)
        answer = client.request('<ping xmlns="urn:xmpp:ping"/>', timeout=5.0)
        print(answer.tag, client.jid, client.state)
        ended: bool = client.wait(1.0)
    except yaxmpp.NetworkError as exc:
        print("network:", exc)
    except yaxmpp.Error as exc:
        print("error:", exc)
    finally:
        client.close()

    with yaxmpp.Client("login", "token") as pulled:
        got: List[Union[yaxmpp.Notification, yaxmpp.Resync]] = list(pulled.notifications(timeout=1.0))
        one = pulled.get_notification(timeout=1.0)
        if not one.is_resync:
            print(len(one.changes))
    '''
)


def _mypy(*args: str) -> "subprocess.CompletedProcess[str]":
    pytest.importorskip("mypy")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", os.path.join(ROOT, ".mypy_cache"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_passes_mypy_strict():
    result = _mypy("-p", "yaxmpp")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_user_script_against_the_public_api_passes_mypy_strict(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT)
    result = _mypy(str(script))
    assert result.returncode == 0, result.stdout + result.stderr
