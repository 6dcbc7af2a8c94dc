"""XML namespaces and qualified tag names used on the wire, in ElementTree's ``{ns}local`` form."""

STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
XML = "http://www.w3.org/XML/1998/namespace"
TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams"
COMPRESS_FEATURE = "http://jabber.org/features/compress"
COMPRESS = "http://jabber.org/protocol/compress"
PING = "urn:xmpp:ping"
VERSION = "jabber:iq:version"
DISK = "yandex:push:disk"


def qname(namespace: str, local: str) -> str:
    """``{namespace}local``, the ElementTree spelling of a qualified name."""
    return "{%s}%s" % (namespace, local)


STREAM = qname(STREAMS, "stream")
FEATURES = qname(STREAMS, "features")
STREAM_ERROR = qname(STREAMS, "error")
XML_LANG = qname(XML, "lang")

IQ = qname(CLIENT, "iq")
MESSAGE = qname(CLIENT, "message")
PRESENCE = qname(CLIENT, "presence")
STANZA_ERROR = qname(CLIENT, "error")

STARTTLS = qname(TLS, "starttls")
PROCEED = qname(TLS, "proceed")
TLS_FAILURE = qname(TLS, "failure")

MECHANISMS = qname(SASL, "mechanisms")
MECHANISM = qname(SASL, "mechanism")
SASL_SUCCESS = qname(SASL, "success")
SASL_FAILURE = qname(SASL, "failure")
SASL_CHALLENGE = qname(SASL, "challenge")
SASL_TEXT = qname(SASL, "text")

BIND_TAG = qname(BIND, "bind")
JID_TAG = qname(BIND, "jid")
SESSION_TAG = qname(SESSION, "session")
OPTIONAL = qname(SESSION, "optional")

COMPRESSION = qname(COMPRESS_FEATURE, "compression")
COMPRESSION_METHOD = qname(COMPRESS_FEATURE, "method")
COMPRESSED = qname(COMPRESS, "compressed")
COMPRESS_FAILURE = qname(COMPRESS, "failure")

PING_TAG = qname(PING, "ping")
VERSION_QUERY = qname(VERSION, "query")
DISK_QUERY = qname(DISK, "query")
