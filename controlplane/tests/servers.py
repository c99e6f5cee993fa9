"""Raw TCP stand-ins on loopback: servers that do not speak HTTP (or speak it badly), for the outbound tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: What a Redis, an SSH server or a broken HTTP server says; each carries SECRET, which no message may repeat.
BANNERS = [
    b"-ERR SECRET-BANNER unknown command\r\n",  # Redis
    b"SSH-2.0-OpenSSH_SECRET-BANNER\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\nSECRET-BANNER",  # cut short
    b"HTTP/1.1 2x0 SECRET-BANNER\r\n\r\n",
]


@contextmanager
def raw_server(payload: bytes) -> Iterator[str]:
    """Reads a request and answers ``payload`` as is (a Redis, SSH or broken HTTP server), then closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(payload)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
