"""Checks that a secret shows nowhere, not even in part: for any test that looks at text,
errors or logs a hostile server could have filled with the token.

    from .secrets_check import assert_no_secret, assert_error_clean, half
    assert_no_secret(caplog.text, TOKEN, login=LOGIN)
"""

from __future__ import annotations

import base64
import pickle
from typing import Iterable, List, Optional, Union

#: The length of the shortest piece of a secret that must never show.
PIECE = 8


def base64_forms(secret: str) -> List[str]:
    """``secret`` in base64 at the three alignments it can have inside a longer base64
    string (only the characters that depend on the secret alone)."""
    data = secret.encode("utf-8")
    forms = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + data).decode("ascii")
        forms.append(encoded[-(-8 * pad // 6) : 8 * (pad + len(data)) // 6])
    return forms


def sensitive_forms(token: str, login: Optional[str] = None) -> List[str]:
    """The token, its base64 forms, and (given the login) the base64 of the X-YANDEX-OAUTH
    initial response ``login NUL token``."""
    forms = [token] + base64_forms(token)
    if login is not None:
        forms.append(base64.b64encode(("%s\0%s" % (login, token)).encode("utf-8")).decode("ascii"))
    return forms


def pieces(token: str, login: Optional[str] = None) -> List[str]:
    """Every run of :data:`PIECE` consecutive characters of every sensitive form."""
    out = []
    for form in sensitive_forms(token, login):
        out += [form[i : i + PIECE] for i in range(len(form) - PIECE + 1)]
    return out


def half(token: str, first: bool = True) -> str:
    """One half of the token (what a hostile server may echo)."""
    middle = len(token) // 2
    return token[:middle] if first else token[middle:]


def assert_no_secret(text: Union[str, bytes, Iterable[str]], token: str, login: Optional[str] = None) -> None:
    """No piece of :data:`PIECE` characters of ``token`` (or of its base64 forms, or of the
    initial response when ``login`` is given) appears in ``text``."""
    if isinstance(text, bytes):
        blob = text.decode("utf-8", "replace")
    elif isinstance(text, str):
        blob = text
    else:
        blob = "\n".join(text)
    for piece in pieces(token, login):
        assert piece not in blob, "a piece of the secret (%d chars at %d) shows in: %r" % (
            len(piece),
            blob.index(piece),
            blob[max(blob.index(piece) - 40, 0) : blob.index(piece) + 40].replace(piece, "<PIECE>"),
        )


def assert_error_clean(error: BaseException, token: str, login: Optional[str] = None) -> BaseException:
    """``error``'s str, repr, args, attributes, and pickled form carry no piece of the
    token; and it unpickles to an equally clean error with the same message.  Returns the
    unpickled copy."""
    texts = [str(error), repr(error), repr(error.args), repr(vars(error))]
    data = pickle.dumps(error)
    copy = pickle.loads(data)
    texts += [str(copy), repr(copy), repr(copy.args), repr(vars(copy))]
    assert_no_secret(texts, token, login)
    assert_no_secret(data, token, login)
    assert type(copy) is type(error) and str(copy) == str(error)
    return copy
