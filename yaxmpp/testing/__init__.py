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
"""

from .server import CA_FILE, CERT_FILE, KEY_FILE, FakeServer, ServerSession

__all__ = ["FakeServer", "ServerSession", "CA_FILE", "CERT_FILE", "KEY_FILE"]
