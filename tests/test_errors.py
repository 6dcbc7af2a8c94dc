"""The error tree: what a caller can catch, and errors that survive pickling."""

from __future__ import annotations

import pickle

import pytest

import yaxmpp
from yaxmpp import errors

EXAMPLES = [
    errors.Error("base"),
    errors.UsageError("bad option"),
    errors.LocalProtocolError("driven wrongly"),
    errors.NetworkError("network"),
    errors.ConnectError("cannot connect to h:5222: refused", host="h", port=5222),
    errors.TLSError("certificate verification failed"),
    errors.Timeout("connect() timed out after 3s while TLS handshake", step="TLS handshake"),
    errors.ConnectionLost("connection lost"),
    errors.ProtocolError("malformed XML"),
    errors.StreamError("see-other-host", "moving", "other.example:5222"),
    errors.AuthError("not-authorized", "bad token"),
    errors.IqError("iq abc", "service-unavailable", "cancel", "no such service"),
    errors.SubscribeError("forbidden", "auth", "no"),
    errors.ClientClosed("closed"),
    errors.APIError("cloud-api.yandex.net answered HTTP 401", status=401, error="UnauthorizedError", description="Unauthorized"),
]


def test_every_exported_error_has_an_example():
    exported = {name for name in errors.__all__}
    assert exported == {type(e).__name__ for e in EXAMPLES}
    for name in exported:
        assert getattr(yaxmpp, name) is getattr(errors, name)


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_to_an_equal_message_and_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)
    assert copy.args == error.args


def test_messages_are_not_doubled():
    assert str(errors.AuthError("not-authorized", "bad")) == "authentication failed: not-authorized (bad)"
    assert str(errors.StreamError("conflict")) == "stream error from server: conflict"
    assert str(errors.SubscribeError("forbidden")) == "Disk push subscription failed: forbidden"


def test_network_failures_share_one_base_and_keep_the_builtin_ones():
    for cls in (errors.ConnectError, errors.TLSError, errors.Timeout, errors.ConnectionLost):
        assert issubclass(cls, errors.NetworkError) and issubclass(cls, errors.Error)
    assert issubclass(errors.Timeout, TimeoutError)
    assert issubclass(errors.ConnectError, ConnectionError)
    assert issubclass(errors.UsageError, ValueError)
    assert issubclass(errors.SubscribeError, errors.IqError)
    # The OSError side of ConnectError and Timeout does not misread their arguments.
    error = errors.ConnectError("refused", host="h", port=1)
    assert error.errno is None and str(error) == "refused"


def test_structured_fields():
    assert errors.Timeout("t", step="TLS handshake").step == "TLS handshake"
    error = errors.ConnectError("c", host="push.example", port=443)
    assert (error.host, error.port) == ("push.example", 443)
    assert errors.StreamError("system-shutdown").condition == "system-shutdown"
