"""The timeout fast paths of the consumer side (issue 15, second round)."""

import math

import pytest

from yaxmpp.deadline import MAX_TIMEOUT, check_timeout
from yaxmpp.errors import UsageError


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, 0.0, MAX_TIMEOUT * 2])
def test_the_float_fast_path_still_refuses_bad_floats(value: float) -> None:
    with pytest.raises(UsageError):
        check_timeout("timeout", value, allow_none=True)


def test_the_float_fast_path_returns_the_value() -> None:
    assert check_timeout("timeout", 2.5, allow_none=False) == 2.5
    assert check_timeout("timeout", MAX_TIMEOUT, allow_none=False) == MAX_TIMEOUT


@pytest.mark.parametrize("char", list('&<>"\n\r\t'))
def test_a_run_of_acknowledgements_with_an_id_needing_escapes_is_built_one_by_one(char: str) -> None:
    from yaxmpp.protocol import stanzas

    assert stanzas.iq_results("ya.ru", ["a", "b" + char]) is None
    assert stanzas.iq_results("ya.ru", ["a", "b"]) == stanzas.iq_result("ya.ru", "a") + stanzas.iq_result("ya.ru", "b")


@pytest.mark.parametrize("value", [-1, math.nan, "soon"])
def test_notifications_refuses_a_bad_timeout_at_the_call(make_server, make_client, value) -> None:
    """It used to be checked inside the iteration's ``except Error``: a running client then
    yielded nothing, as if the timeout had passed."""
    client = make_client(make_server()).connect()
    with pytest.raises(UsageError):
        client.notifications(timeout=value)
    with pytest.raises(UsageError):
        next(iter(client.notifications(value)))  # (the same, whatever the caller does next)
    client.close()
    with pytest.raises(UsageError):
        client.notifications(timeout=value)
