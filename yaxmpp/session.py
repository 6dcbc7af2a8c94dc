"""A client's whole life, in one place: connect, subscribe, follow redirects, reconnect, close.

:class:`Session` owns the lifecycle of one :class:`~yaxmpp.Client`.  Its state is one enum,
:class:`State`, and every allowed transition is in :data:`TRANSITIONS`; the state changes
only through :meth:`Session._set`, under one lock.  ::

    IDLE ──connect()──> CONNECTING ──ok──> CONNECTED <──ok── RECONNECTING
                            │                 │  └──lost (policy)──>──┘  │
                            └──failed──> FAILED <──lost (no policy)──────┘ (gave up)
    any of them ──close()──> CLOSING ──> CLOSED;  CLOSED / FAILED ──connect()──> CONNECTING

(``connect(retry=True)`` stays in CONNECTING through its attempts and backoff waits.)

It drives the layers below it and nothing calls up into it: a :class:`Connection` reports
through the two callables it is handed, the reconnect loop (``yaxmpp-reconnect-N``) is a
method of this class, and :class:`~yaxmpp.delivery.Delivery` hands notifications to the user.

Rules it keeps:

- A ``see-other-host`` redirect during ``connect()`` is followed at once (at most
  ``max_redirects`` times, within the same deadline).  In the reconnect loop a redirect is an
  attempt like any other: it waits its backoff delay, then dials the named host.  There is no
  path that connects again without a delay.  The TLS certificate is always checked against
  the configured host (see :mod:`yaxmpp.connection`).
- A failure that ends the client (a failed ``connect()``, the reconnect policy giving up, a
  crash of a driver thread) ends delivery with that error, so ``notifications()``,
  ``get_notification()`` and :meth:`wait` raise it; only ``close()`` ends them quietly.
- ``close()`` is bounded by its own timeout, idempotent, safe from any thread and callback,
  and stops a ``connect()`` or a reconnect (backoff wait or dial) in progress.
- ``connect(retry=True)`` retries a first connection that failed for the network's reasons
  (:func:`~yaxmpp.policy.is_network_failure`) under the reconnect policy, in the caller's
  thread and in state CONNECTING; ``close()`` stops its backoff wait too.
- The gap is part of the stream: from the moment a session is found lost, the pushes of the
  next sessions are held back (:meth:`Delivery.hold`); once a new session is subscribed, one
  :class:`~yaxmpp.Resync` goes into the stream first, then what was held.  With
  ``check_revision`` each session start asks the Disk REST API for the revision on a thread
  of its own (``yaxmpp-revision-N``); the resync of a reconnect waits (its pushes held, the
  XMPP session running as usual) until the answers of the sessions on both sides of the gap
  are in.  Each request is bounded by ``api_timeout``, so that wait is too.  The resync is
  released early (with what is known) when its session ends or the client is closed.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple
from xml.etree.ElementTree import Element

from .connection import Connection, Target
from .deadline import Deadline, check_timeout
from .delivery import Delivery
from .gap import Gap, Probe
from .dial import parse_redirect
from .errors import (
    ClientClosed,
    ConnectionLost,
    Error,
    IqError,
    LocalProtocolError,
    StreamError,
    SubscribeError,
    Timeout,
    UsageError,
)
from .options import Options
from .policy import is_network_failure
from .protocol.disk import subscribe_payload, subscribe_target
from .protocol.redact import Redactor, bound
from .resync import Item, Resync

__all__ = ["Session", "State", "TRANSITIONS"]

log = logging.getLogger("yaxmpp")

_numbers = itertools.count(1)


def _call_timeout(value: Optional[float]) -> Optional[float]:
    """A call's ``timeout``: None (the default or no limit, depending on the call), 0 (do not
    wait), or a positive number of seconds checked like every other timeout."""
    if value == 0 and not isinstance(value, bool):
        return 0.0
    return check_timeout("timeout", value, allow_none=True)


class State(enum.Enum):
    IDLE = "not connected yet"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "ended by an error"


TRANSITIONS: Dict[State, FrozenSet[State]] = {
    State.IDLE: frozenset({State.CONNECTING, State.CLOSING}),
    State.CONNECTING: frozenset({State.CONNECTED, State.FAILED, State.CLOSING}),
    State.CONNECTED: frozenset({State.RECONNECTING, State.FAILED, State.CLOSING}),
    State.RECONNECTING: frozenset({State.CONNECTED, State.FAILED, State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset({State.CONNECTING}),
    State.FAILED: frozenset({State.CONNECTING, State.CLOSING}),
}

_ENDED = (State.CLOSED, State.FAILED)


class Session:
    """The lifecycle of one client (see the module docstring).  ``owner`` is what
    ``on_connect`` is called with (the public ``Client``)."""

    def __init__(self, options: Options, owner: Any) -> None:
        self.options = options
        self.number = next(_numbers)
        self._owner = owner
        self.redactor = Redactor.for_mechanism(options.mechanism)
        self.delivery = Delivery(
            options.max_pending, options.on_notification, options.callbacks, "yaxmpp-dispatch-%d" % self.number
        )
        self._cond = threading.Condition(threading.Lock())
        self._state = State.IDLE
        self._connection: Optional[Connection] = None  # the open one, or the attempt in progress
        self._lost: Optional[Error] = None  # why the last session ended (for the reconnect loop)
        self._lost_at = 0.0  # time.time() when it was found lost
        self._gap: Optional[Gap] = None  # a reconnect's resync waiting for revision answers
        self._probe: Optional[Probe] = None  # the revision request of the current session
        self._probes: List[Probe] = []  # revision requests started and not yet reaped
        self._error: Optional[Error] = None  # what ended the client (state FAILED)
        self._supervisor: Optional[threading.Thread] = None  # the current run's reconnect loop
        self._run = 0  # counts connect() calls: a reconnect loop serves only the run it began in

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def _set(self, new: State) -> None:
        """Change state (the caller holds the lock); an unlisted transition is a bug."""
        if new not in TRANSITIONS[self._state]:
            raise LocalProtocolError("client cannot go from %s to %s" % (self._state.name, new.name))
        log.debug("client %d: %s -> %s", self.number, self._state.name, new.name)
        self._state = new
        self._cond.notify_all()

    @property
    def connection(self) -> Optional[Connection]:
        """The current connection when the session is open."""
        connection = self._connection
        return connection if self._state is State.CONNECTED else None

    @property
    def error(self) -> Optional[Error]:
        """What ended the client, when it is FAILED."""
        return self._error

    # -- connecting ----------------------------------------------------------------------

    def connect(self, timeout: Optional[float], retry: bool = False) -> None:
        seconds = _call_timeout(timeout)
        if not isinstance(retry, bool):
            raise UsageError("retry must be True or False")
        if retry and self.options.reconnect is None:
            raise UsageError("connect(retry=True) needs a reconnect policy (reconnect=yaxmpp.Reconnect())")
        with self._cond:
            state = self._state
            if state is State.CONNECTED:
                return
            if state is State.CONNECTING:
                raise UsageError("connect() is already running in another thread")
            if state is State.RECONNECTING:
                raise UsageError("the client is reconnecting by itself; wait for it or close() it")
            if state is State.CLOSING:
                raise ClientClosed("the client is being closed")
            self._set(State.CONNECTING)
            self._run += 1
            run = self._run
            self._error = None
            self._probe = None  # a new run has no baseline revision yet
            self.delivery.reopen()
        with bound(self.redactor):
            try:
                if retry:
                    connection = self._connect_retrying(seconds, run)
                else:
                    connection = self._connect_following_redirects(Deadline(self.options.timeout if seconds is None else seconds), run)
            except BaseException as exc:
                failure = self._connect_failure(exc)
                with self._cond:
                    if self._state is State.CONNECTING and self._run == run:
                        self._fail_locked(failure)  # a consumer waiting for notifications learns why
                    else:
                        failure = ClientClosed("the client was closed during connect()")
                if not isinstance(exc, Exception):
                    raise  # KeyboardInterrupt, SystemExit: the caller's own
                if failure is exc:
                    raise
                raise failure from None
        self._opened(connection, State.CONNECTING, run)

    @staticmethod
    def _connect_failure(exc: BaseException) -> Error:
        """The typed error a failed connect() reports (a bug below becomes LocalProtocolError)."""
        if isinstance(exc, Error):
            return exc
        if isinstance(exc, Exception):
            log.error("connect() failed inside the library", exc_info=True)
            return LocalProtocolError("internal error during connect(): %s" % type(exc).__name__)
        return ClientClosed("connect() was interrupted")

    def _connect_retrying(self, seconds: Optional[float], run: int) -> Connection:
        """connect(retry=True): attempts (each within ``seconds``, redirects followed at once)
        until one succeeds, a failure is not the network's, or the policy gives up."""
        policy = self.options.reconnect
        assert policy is not None
        attempt = 0
        while True:
            try:
                return self._connect_following_redirects(Deadline(self.options.timeout if seconds is None else seconds), run)
            except Error as exc:
                if not is_network_failure(exc) or policy.gives_up(attempt, exc):
                    raise
                error = exc
            delay = policy.delay(attempt)
            attempt += 1
            log.warning("connect() failed: %s; trying again in %.2fs (attempt %d)", error, delay, attempt)
            with self._cond:
                if self._state is not State.CONNECTING or self._run != run:
                    raise ClientClosed("the client was closed during connect()")
                if policy.on_retry is not None:
                    self.delivery.start()  # on_retry runs now, not once connected
                    self.delivery.put_call(policy.on_retry, error, attempt, delay)
                if self._cond.wait_for(lambda: self._state is not State.CONNECTING or self._run != run, delay):
                    raise ClientClosed("the client was closed during connect()")

    def _connect_following_redirects(self, deadline: Deadline, run: int) -> Connection:
        target: Target = self.options.targets()
        redirects = 0
        while True:
            try:
                return self._attempt(target, deadline, run)
            except StreamError as exc:
                if exc.other_host is None or redirects >= self.options.max_redirects:
                    raise
                redirects += 1
                target = self._redirect_target(exc.other_host)
                log.info("redirected to %s", exc.other_host)

    def _redirect_target(self, other_host: str) -> Target:
        host, port = parse_redirect(other_host)
        if port is None:
            return host, self.options.port, self.options.tls_port
        return host, port, None  # a port named by the redirect: STARTTLS there, no fallback

    def _attempt(self, target: Target, deadline: Deadline, run: int) -> Connection:
        """One connection of run ``run``: dial, negotiate, subscribe.  Cleans up on failure."""
        connection = Connection(self.options, target, self.redactor, self.delivery.put_notifications, self._ended)
        with self._cond:
            if self._state not in (State.CONNECTING, State.RECONNECTING) or self._run != run:
                raise ClientClosed("the client was closed")
            self._connection = connection  # so that close() can abort it
        try:
            connection.open(deadline)
            if self.options.subscribe:
                self._subscribe(connection, deadline)
        except BaseException:
            connection.close(Deadline(min(1.0, deadline.remaining() or 0.0)))
            raise
        return connection

    def _opened(self, connection: Connection, previous: State, run: int) -> None:
        """An attempt of run ``run`` succeeded: the session is open (unless close() came first)."""
        until = time.time()  # the new session is subscribed (its pushes are held meanwhile)
        with self._cond:
            if self._state is not previous or self._connection is not connection or self._run != run:
                closing = True
            else:
                closing = False
                self._set(State.CONNECTED)
                log.info("connected as %s", connection.jid)
                self.delivery.start()
                self.delivery.put_call(self.options.on_connect, self._owner)
                before = self._probe
                self._probe = self._start_probe_locked() if self.options.check_revision else None
                if previous is State.RECONNECTING:
                    assert self._lost is not None
                    gap = Gap(self._lost_at, until, self._lost, before, self._probe)
                    if gap.answered:
                        self._release_locked(gap)
                    else:
                        self._gap = gap  # released by the last revision answer
                if self.options.reconnect is not None and previous is State.CONNECTING:
                    # A loop of this run's own (one of an earlier run, if still ending, stops
                    # by itself: it serves only its run).
                    supervisor = threading.Thread(
                        target=self._supervise, args=(run,), name="yaxmpp-reconnect-%d" % self.number, daemon=True
                    )
                    supervisor.start()
                    # Only a started thread is recorded: a signal handler may raise (SIGTERM
                    # in `yaxmpp watch`) inside start(), and close() must not join a thread
                    # that never ran (a loop that did start ends by itself once closed).
                    self._supervisor = supervisor
                if connection.ended:  # lost while we were getting here
                    self._lost_locked(connection, connection.end_error)
        if closing:
            connection.close(Deadline(self.options.close_timeout))
            raise ClientClosed("the client was closed during connect()")

    def _ended(self, connection: Connection, error: Optional[Error]) -> None:
        """A connection's reader thread saw its end (on that thread: returns at once)."""
        with self._cond:
            if connection is self._connection and self._state is State.CONNECTED:
                self._lost_locked(connection, error)

    def _lost_locked(self, connection: Connection, error: Optional[Error]) -> None:
        if error is None:  # pragma: no cover - only close() ends a stream without an error
            error = ConnectionLost("the connection ended")
        self._release_gap_locked()  # the session it opens is over: its pushes come first
        self.delivery.put_call(self.options.on_disconnect, error)
        if self.options.reconnect is not None:
            self._lost = error
            self._lost_at = time.time()
            self.delivery.hold()  # what the next session receives waits for its resync
            self._set(State.RECONNECTING)
        else:
            self._fail_locked(error)

    def _fail_locked(self, error: Error) -> None:
        """End the client with ``error``: every consumer learns it."""
        self._release_gap_locked()
        self._error = error
        self._set(State.FAILED)
        self.delivery.end(error)

    # -- the resync item and the revision check ------------------------------------------------

    def _release_locked(self, gap: Gap) -> None:
        """Put the resync of ``gap`` into the stream, then the pushes held behind it."""
        if self._gap is gap:
            self._gap = None
        checked = self.options.check_revision
        made: List[Resync] = []

        def lead(first: Any) -> Resync:
            made.append(gap.resync(self.redactor, checked, first))
            return made[0]

        self.delivery.release(lead)
        resync = made[0]
        log.info(
            "reconnected after %.1fs without a session: changes may have been missed (revision changed: %s)",
            max(0.0, resync.until - resync.since),
            "unknown" if resync.revision_changed is None else resync.revision_changed,
        )

    def _release_gap_locked(self) -> None:
        """Release a resync still waiting for revision answers (with what is known)."""
        gap = self._gap
        if gap is not None:
            self._release_locked(gap)

    def _start_probe_locked(self) -> Probe:
        """Ask for the disk's revision on a thread of its own (the session is not delayed)."""
        probe = Probe()
        thread = threading.Thread(target=self._run_probe, args=(probe,), name="yaxmpp-revision-%d" % self.number, daemon=True)
        probe.thread = thread
        self._probes = [p for p in self._probes if p.thread is not None and p.thread.is_alive()]
        thread.start()
        self._probes.append(probe)  # only a started thread is joined by close()
        return probe

    def _run_probe(self, probe: Probe) -> None:
        try:
            with bound(self.redactor):
                probe.run(self.options)
        finally:
            probe.done.set()
            with self._cond:
                gap = self._gap
                if gap is not None and gap.answered:
                    self._release_locked(gap)

    def _stop_probes(self, deadline: Deadline) -> None:
        """Cancel the revision requests and join their threads (bounded; one that overstays
        ends on its own within ``api_timeout``)."""
        with self._cond:
            probes, self._probes = self._probes, []
        for probe in probes:
            probe.cancel.cancel()
        for probe in probes:
            thread = probe.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.1, deadline.remaining() or 0.0))
                if thread.is_alive():
                    log.warning("a revision request is still running after close(); its thread ends within api_timeout")

    # -- the reconnect loop ------------------------------------------------------------------

    def _supervise(self, run: int) -> None:
        try:
            with bound(self.redactor):
                self._reconnect_loop(run)
        except BaseException as exc:  # a bug must end the client loudly, never silently
            log.exception("the reconnect loop failed")
            with self._cond:
                if self._state in (State.CONNECTED, State.RECONNECTING) and self._run == run:
                    self._fail_locked(LocalProtocolError("the reconnect loop failed: %s" % type(exc).__name__))

    def _reconnect_loop(self, run: int) -> None:
        policy = self.options.reconnect
        assert policy is not None
        attempt = 0
        while True:
            with self._cond:
                while self._state is State.CONNECTED and self._run == run:
                    self._cond.wait()
                if self._state is not State.RECONNECTING or self._run != run:
                    return
                connection, error = self._connection, self._lost
            assert connection is not None and error is not None
            if connection.uptime() >= policy.stable_after:
                attempt = 0  # only a session that stayed up resets the count
            target: Target = self.options.targets()
            redirects = 0
            if isinstance(error, StreamError) and error.other_host is not None:
                redirects, target, error = self._follow(error, redirects)
            while True:
                if policy.gives_up(attempt, error):
                    log.warning("not reconnecting after: %s", error)
                    with self._cond:
                        if self._state is State.RECONNECTING and self._run == run:
                            self._fail_locked(error)
                    return
                delay = policy.delay(attempt)
                attempt += 1
                log.info("reconnecting in %.2fs (attempt %d) after: %s", delay, attempt, error)
                with self._cond:
                    if self._state is not State.RECONNECTING or self._run != run:
                        return
                    self.delivery.put_call(policy.on_retry, error, attempt, delay)
                    if self._cond.wait_for(lambda: self._state is not State.RECONNECTING or self._run != run, delay):
                        return  # closed during the wait
                try:
                    connection = self._attempt(target, Deadline(self.options.timeout), run)
                except ClientClosed:
                    return
                except Error as exc:
                    log.warning("reconnect attempt %d failed: %s", attempt, exc)
                    error = exc
                    target = self.options.targets()
                    if isinstance(exc, StreamError) and exc.other_host is not None:
                        redirects, target, error = self._follow(exc, redirects)
                    continue
                try:
                    self._opened(connection, State.RECONNECTING, run)
                except ClientClosed:
                    return
                break

    def _follow(self, error: StreamError, redirects: int) -> "tuple[int, Target, Error]":
        """The next attempt's target after a redirect (the configured one past the limit or
        for an unusable target); returns (redirects so far, target, the error to report)."""
        if redirects >= self.options.max_redirects:
            return redirects, self.options.targets(), error
        assert error.other_host is not None
        try:
            target = self._redirect_target(error.other_host)
        except Error as bad:
            return redirects, self.options.targets(), self.redactor.scrub_error(bad)
        log.info("the next attempt goes to %s", error.other_host)
        return redirects + 1, target, error

    # -- requests ------------------------------------------------------------------------

    def _require_connection(self) -> Connection:
        with self._cond:
            state, connection = self._state, self._connection
        if state is State.CONNECTED and connection is not None:
            return connection
        if state is State.RECONNECTING:
            raise ConnectionLost("the connection was lost; the client is reconnecting")
        if state is State.FAILED:
            raise ConnectionLost("the client is not connected: %s" % self._error)
        raise ClientClosed("the client is not connected")

    def request(self, payload: str, iq_type: str, to: Optional[str], timeout: Optional[float]) -> Element:
        seconds = _call_timeout(timeout)
        if iq_type not in ("get", "set"):
            raise UsageError("type must be 'get' or 'set'")
        connection = self._require_connection()
        with bound(self.redactor):
            return connection.request(iq_type, payload, to, self.options.request_timeout if seconds is None else seconds)

    def subscribe(self, timeout: Optional[float]) -> None:
        seconds = _call_timeout(timeout)
        deadline = Deadline(self.options.request_timeout if seconds is None else seconds)
        with bound(self.redactor):
            self._subscribe(self._require_connection(), deadline)

    def _subscribe(self, connection: Connection, deadline: Deadline) -> None:
        to = subscribe_target(self.options.login, self.options.domain)
        remaining = deadline.remaining()
        try:
            connection.request("set", subscribe_payload(), to, remaining if remaining is not None else self.options.timeout)
        except IqError as exc:
            raise SubscribeError(exc.condition, exc.type, exc.text) from None
        except Timeout:
            raise Timeout(
                "no answer to the Disk push subscription within %gs" % (deadline.seconds or 0.0),
                "waiting for the subscription's answer",
            ) from None
        log.info("subscribed to Disk pushes for %s", to)

    # -- notifications -------------------------------------------------------------------

    def check_pull(self) -> None:
        if self.options.on_notification is not None:
            raise UsageError("on_notification is set: notifications go to the callback only")

    def next_notification(self, timeout: Optional[float]) -> Optional[Item]:
        """The next notification (or resync item), None when ``timeout`` passed; raises what
        ended the client."""
        seconds = _call_timeout(timeout)
        return self.delivery.take(seconds)  # type: ignore[no-any-return]

    def notification_taker(self, timeout: Optional[float]) -> "Tuple[Callable[[Optional[float]], Optional[Item]], Optional[float]]":
        """:meth:`next_notification` with ``timeout`` checked once, for a loop: the function
        that takes the next item (None when the timeout passed; raises what ended the client)
        and the checked timeout to call it with (a direct call per item, no partial)."""
        return self.delivery.take, _call_timeout(timeout)

    # -- ending --------------------------------------------------------------------------

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until the client has ended; raise the error that ended it (none after close())."""
        seconds = _call_timeout(timeout)
        with self._cond:
            if not self._cond.wait_for(lambda: self._state in _ENDED, seconds):
                return False
            error = self._error
        if error is not None:
            raise error.with_traceback(None)
        return True

    def close(self, timeout: Optional[float]) -> None:
        with bound(self.redactor):
            self._close(_call_timeout(timeout))

    def _close(self, seconds: Optional[float]) -> None:
        deadline = Deadline(self.options.close_timeout if seconds is None else seconds)
        with self._cond:
            state = self._state
            if state is State.CLOSED:
                return
            if state is State.CLOSING:
                if self.delivery.on_dispatcher_thread:
                    return  # a callback of the close() in progress, which waits for it
                # Another thread is closing: wait for it, bounded.
                self._cond.wait_for(lambda: self._state is not State.CLOSING, deadline.remaining())
                return
            if state is State.IDLE:
                self._set(State.CLOSING)
                self._set(State.CLOSED)
                self.delivery.end(None)
                return
            self._set(State.CLOSING)
            connection, supervisor = self._connection, self._supervisor
        try:
            if connection is not None:
                connection.close(deadline)  # aborts a connect() in progress
            if supervisor is not None and supervisor is not threading.current_thread():
                supervisor.join(max(0.1, deadline.remaining() or 0.0))
            self._stop_probes(deadline)
            with self._cond:
                self._release_gap_locked()  # before the end of its session
            if state is State.CONNECTED:
                self.delivery.put_call(self.options.on_disconnect, None)
            self.delivery.end(None)  # after a failure, consumers still learn that error
            self.delivery.join(max(0.1, deadline.remaining() or 0.0))
        finally:  # also when interrupted (Ctrl-C): the client ends CLOSED, never stuck CLOSING
            if connection is not None:
                connection.abort()  # nothing to do once closed; never blocks
            with self._cond:
                self._release_gap_locked()
                for probe in self._probes:
                    probe.cancel.cancel()
            self.delivery.end(None)
            with self._cond:
                self._connection = None
                self._set(State.CLOSED)

    def describe(self) -> str:
        """The state in a few words, for ``repr`` (masked: a server chooses the JID)."""
        connection = self.connection
        if connection is not None:
            return "connected jid=%r" % self.redactor.scrub(connection.jid or "")
        return self._state.value
