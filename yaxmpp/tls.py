"""The client's default TLS configuration: certifi's CA bundle, hostname check, TLS >= 1.2."""

from __future__ import annotations

import errno
import functools
import os
import ssl
from typing import Optional

import certifi

from .errors import UsageError

__all__ = ["create_default_context"]


def _unusable(cafile: "str | os.PathLike[str]", exc: BaseException) -> UsageError:
    """The configuration error for a CA file that cannot be used, in words."""
    if isinstance(exc, FileNotFoundError):
        why = "not found"
    elif isinstance(exc, IsADirectoryError) or getattr(exc, "errno", None) == errno.EISDIR:
        why = "is a directory, not a PEM file"
    elif isinstance(exc, PermissionError):
        why = "cannot be read: permission denied"
    elif isinstance(exc, ssl.SSLError):
        why = "not a PEM file of CA certificates (%s)" % (exc.reason or "unreadable").replace("_", " ").lower()
    elif isinstance(exc, OSError):
        why = "cannot be read: %s" % (exc.strerror or type(exc).__name__)
    else:
        why = "cannot be used (%s)" % type(exc).__name__
    return UsageError("cafile %r: %s" % (os.fspath(cafile), why))


@functools.lru_cache(maxsize=16)
def create_default_context(cafile: Optional[str] = None) -> ssl.SSLContext:
    """A verifying client context trusting ``cafile`` (default: ``certifi.where()``).

    Shared by every client with the same ``cafile``: loading certifi's bundle costs about
    40 ms and 700 KiB, and a context is safe to use from many connections at once.

    A ``cafile`` that is missing, unreadable, or not PEM CA certificates is a configuration
    error: :class:`~yaxmpp.UsageError` naming the file and saying what is wrong.
    """
    if cafile is not None and not isinstance(cafile, (str, os.PathLike)):
        raise UsageError("cafile must be a path, not %s" % type(cafile).__name__)
    path = cafile or certifi.where()
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=path)
    except (OSError, ssl.SSLError, ValueError, TypeError) as exc:
        raise _unusable(path, exc) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
