"""Runs localstripe for the tests: bound to 127.0.0.1 only and without its pickle dump to /tmp.

``python -m billing.tests.localstripe_standin --port N``. localstripe (PyPI, 1.15) listens on every
interface and writes its whole store to ``/tmp/localstripe.pickle`` after each write by default; neither
is acceptable on a shared machine, so this wrapper binds loopback and turns persistence off.
"""

from __future__ import annotations

import argparse
import logging
import socket

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The stand-in's own persistence, not the client under test: state lives in memory only.
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, sock=sock, access_log=None, print=None)


if __name__ == "__main__":
    main()
