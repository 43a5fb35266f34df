"""Package versions for the start-up log line and `--about`, without an e-mail parser.

singer-sdk reads the tap's and its own version (logged at the start of every run) and, for
`--about`, the supported Python versions through `importlib.metadata`, which parses each
package's METADATA file as an e-mail message: importing `email.policy` and its header parser
costs tens of milliseconds, more than everything else the tap does before its first request
in a small run. The same header values are read here from the file's header lines.
"""

from __future__ import annotations

from importlib import metadata


class PackageHeaders:
    """The header fields of a METADATA file (what the SDK reads: `get`, `get_all`)."""

    def __init__(self, text: str) -> None:
        self._fields: list[tuple[str, str]] = []
        for line in text.splitlines():
            if not line.strip():
                break  # the description follows the headers
            if line[:1] in (" ", "\t") and self._fields:  # a folded header line
                name, value = self._fields[-1]
                self._fields[-1] = (name, f"{value}\n{line}")
                continue
            name, sep, value = line.partition(":")
            if sep:
                self._fields.append((name.strip().lower(), value.strip()))

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header field, as `email.message.Message.get`."""
        key = name.lower()
        return next((value for field, value in self._fields if field == key), default)

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        """Every value of a header field, as `email.message.Message.get_all`."""
        key = name.lower()
        values = [value for field, value in self._fields if field == key]
        return values or default


def package_headers(package: str) -> PackageHeaders | None:
    """The installed package's METADATA headers, or None when it cannot be read."""
    try:
        text = metadata.distribution(package).read_text("METADATA")
    except metadata.PackageNotFoundError:
        return None
    return PackageHeaders(text) if text else None
