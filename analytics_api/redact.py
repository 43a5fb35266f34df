"""Keep the API key out of every message: redaction and short body excerpts.

Error messages may quote a little of a response (a proxy's HTML page, an error detail), but never
a whole body and never the key, even when the server echoes it back.
"""

from __future__ import annotations

EXCERPT_CHARS = 200
MASK = "***"


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked."""
    return text.replace(secret, MASK) if secret else text


def excerpt(text: str | bytes | None, secret: str | None = None, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, secret-free preview of a response body for error messages."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        if secret:  # redact before cutting: a cut through the key would leave most of it
            text = text.replace(secret.encode(), MASK.encode())
        text = text[: limit * 4].decode("utf-8", errors="replace")
    flat = redact(" ".join(text.split()), secret)
    return flat if len(flat) <= limit else flat[:limit] + "…"
