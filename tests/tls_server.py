"""An HTTPS server on 127.0.0.1 that no client trusts: its certificate comes from a CA of its own
(made with `trustme`), so every TLS handshake fails verification on the client side."""

from __future__ import annotations

import socket
import ssl
import threading
from types import TracebackType


class UntrustedTLSServer:
    """Accepts connections and offers its certificate; `connections` counts the attempts."""

    def __init__(self) -> None:
        import trustme

        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        trustme.CA().issue_cert("127.0.0.1").configure_cert(self._context)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> UntrustedTLSServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._listener.close()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self.connections += 1
            try:
                with self._context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)  # a client that trusted the certificate would send its request
            except OSError:  # ssl.SSLError included: the client refused the certificate
                pass
            finally:
                connection.close()
