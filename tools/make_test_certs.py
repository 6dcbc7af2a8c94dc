"""Regenerate the test CA and server certificate shipped in ``yaxmpp/testing/certs``.

They let the loopback stand-in server speak real, verified TLS with only the runtime
dependencies installed.  They are for tests and the demo only: the private key is public.
Needs the test extra (trustme): ``python tools/make_test_certs.py``.
"""

import os

import trustme

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, os.pardir, "yaxmpp", "testing", "certs")

NAMES = ["localhost", "127.0.0.1", "::1", "push.xmpp.yandex.ru", "ya.ru"]


def main() -> None:
    ca = trustme.CA(organization_name="yaxmpp test CA (do not trust)")
    server = ca.issue_cert(*NAMES, organization_name="yaxmpp stand-in server")
    os.makedirs(OUT, exist_ok=True)
    ca.cert_pem.write_to_path(os.path.join(OUT, "ca.pem"))
    with open(os.path.join(OUT, "server.pem"), "wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(os.path.join(OUT, "server-key.pem"))
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
