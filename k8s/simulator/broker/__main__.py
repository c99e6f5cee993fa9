"""`python -m k8s.simulator.broker --host 127.77.0.5 --api-bootstrap-file F [...]`: one simulated EMQX node.

Prints `ready <host> mqtt=<port> api=<port> ws=<port>[ mqtts=<port> wss=<port>]` on stdout once every listener
is bound; exits 0 on SIGTERM/SIGINT, 2 when it cannot start (address in use, unreadable files).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import signal
import sys
import threading

from amqtt.errors import BrokerError

from .api import Api, read_bootstrap, serve_api
from .http_authn import read_http_authenticator
from .node import Node
from .state import BrokerState

log = logging.getLogger("k8s.simulator.broker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m k8s.simulator.broker", description=__doc__)
    p.add_argument("--host", required=True, help="address every listener binds (e.g. 127.77.0.5)")
    p.add_argument("--api-bootstrap-file", required=True, help="key:secret lines for the management API")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--ws-port", type=int, default=8083)
    p.add_argument("--mqtts-port", type=int, default=8883)
    p.add_argument("--wss-port", type=int, default=8084)
    p.add_argument("--api-port", type=int, default=18083)
    p.add_argument("--certfile", help="PEM certificate (chain) for mqtts/wss; both or neither with --keyfile")
    p.add_argument("--keyfile")
    p.add_argument("--state-dir", help="keep users and rules in JSON files here across restarts")
    p.add_argument("--http-authenticator", help="JSON {method, url, headers, params, timeout_ms}: EMQX's HTTP "
                   "authenticator after the built-in database (loopback URLs only)")
    p.add_argument("--allow-anonymous", action="store_true",
                   help="accept clients without a username (no authenticator asked): a baseline for benchmarks")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        p.error("--certfile and --keyfile go together")
    return args


def broker_config(args: argparse.Namespace) -> dict[str, object]:
    listeners: dict[str, dict[str, object]] = {
        "default": {"type": "tcp", "bind": f"{args.host}:{args.mqtt_port}"},
        "ws": {"type": "ws", "bind": f"{args.host}:{args.ws_port}"},
    }
    if args.certfile:
        tls = {"ssl": True, "certfile": args.certfile, "keyfile": args.keyfile}
        listeners["ssl"] = {"type": "tcp", "bind": f"{args.host}:{args.mqtts_port}", **tls}
        listeners["wss"] = {"type": "ws", "bind": f"{args.host}:{args.wss_port}", **tls}
    return {
        "listeners": listeners,
        "plugins": {"k8s.simulator.broker.node.CountersPlugin": {}},
    }


def _describe(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.EADDRINUSE:
            return f"address already in use: {seen}"
        seen = seen.__cause__ or seen.__context__
    return str(exc)


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    try:
        keys = read_bootstrap(args.api_bootstrap_file)
        state = BrokerState(args.state_dir, allow_anonymous=args.allow_anonymous)
        http_authenticator = read_http_authenticator(args.http_authenticator) if args.http_authenticator else None
        node = Node(broker_config(args), state, http_authenticator)
    except (OSError, ValueError) as exc:
        print(f"broker: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        await node.start()
    except (BrokerError, OSError) as exc:
        print(f"broker: cannot start on {args.host}: {_describe(exc)}", file=sys.stderr)
        return 2
    try:
        http = serve_api(Api(node, state, keys, args.host, loop), args.host, args.api_port)
    except OSError as exc:
        print(f"broker: cannot start the management API on {args.host}:{args.api_port}: {_describe(exc)}",
              file=sys.stderr)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(node.shutdown(), 2)
        return 2
    thread = threading.Thread(target=http.serve_forever, name="emqx-api", daemon=True)
    thread.start()

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ports = node.listening_ports()
    extra = f" ws={ports.get('ws')}"
    if "ssl" in ports:
        extra += f" mqtts={ports['ssl']} wss={ports.get('wss')}"
    print(f"ready {args.host} mqtt={ports.get('default')} api={http.server_address[1]}{extra}", flush=True)

    await stop.wait()
    http.shutdown()
    http.server_close()
    try:
        await asyncio.wait_for(node.shutdown(), 1.5)
    except (TimeoutError, BrokerError) as exc:
        log.warning("broker shutdown incomplete: %r", exc)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet = max(logging.WARNING, logging.getLevelName(args.log_level.upper()))
    for name in ("amqtt", "transitions", "websockets"):
        logging.getLogger(name).setLevel(quiet)
    # run() prints one clear line instead of amqtt's traceback when a listener cannot bind
    logging.getLogger("amqtt.broker").addFilter(lambda record: record.getMessage() != "Broker startup failed")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
