"""SIGTERM ends `yaxmpp watch` whatever the main thread is blocked in: the signal's arrival
goes through a wakeup pipe to a thread of its own, which stops the watch."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from yaxmpp.cli import common

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")


def test_sigterm_calls_stop_on_its_own_thread_while_the_main_thread_blocks():
    previous = signal.getsignal(signal.SIGTERM)
    called = threading.Event()
    callers = []

    def stop() -> None:
        callers.append(threading.current_thread().name)
        called.set()

    with common.sigterm_stops(stop):
        threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        assert called.wait(10)  # the main thread blocks on a lock: no Python handler can run here
    assert callers == ["yaxmpp-signals"]
    assert signal.getsignal(signal.SIGTERM) is previous
    assert [t for t in threading.enumerate() if t.name == "yaxmpp-signals"] == []


def test_two_sigterms_stop_once_and_other_signals_do_not_stop():
    called = []
    stopped = threading.Event()

    def stop() -> None:
        called.append(1)
        stopped.set()

    with common.sigterm_stops(stop):
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)  # written to the pipe too: ignored
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            assert stopped.wait(10)
        finally:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    assert called == [1]


def test_without_stop_sigterm_raises_stop_in_the_main_thread():
    with pytest.raises(common.Stop):
        with common.sigterm_stops():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
