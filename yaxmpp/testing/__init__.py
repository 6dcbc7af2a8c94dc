"""A loopback stand-in for push.xmpp.yandex.ru, for tests and the demo.

::

    from yaxmpp import Client
    from yaxmpp.testing import FakeServer

    with FakeServer(login="test", token="t") as server:
        with Client("test", "t", **server.client_options()) as client:
            print(client.jid)                       # test@ya.ru/YaDisk-client
            session = server.wait_for_session()
            print(session.wait_reply(session.ping()))

Needs only the runtime dependencies: the TLS certificate and its test CA ship with the package.
``python -m yaxmpp.testing`` runs it in a terminal (see :mod:`yaxmpp.testing.console`).
"""

from .options import CA_FILE, CERT_FILE, KEY_FILE, ServerOptions
from .peer import ScriptedSession
from .server import FakeServer
from .session import ServerSession

__all__ = ["FakeServer", "ServerSession", "ServerOptions", "ScriptedSession", "CA_FILE", "CERT_FILE", "KEY_FILE"]
