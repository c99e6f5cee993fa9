"""Run the simulated cluster standalone and write a kubeconfig for it (plain http; the client accepts it)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .cluster import SimulatedCluster


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m k8s.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port (read it from the kubeconfig)")
    parser.add_argument("--kubeconfig", default="var/kubeconfig-sim.yaml")
    parser.add_argument("--ready-delay", type=float, default=2.0, help="seconds a new pod stays unready")
    parser.add_argument("--terminate-delay", type=float, default=0.5, help="seconds a deleted pod lingers")
    parser.add_argument("--namespace-delete-delay", type=float, default=2.0)
    parser.add_argument("--brokers-dir", default=None,
                        help="run a real MQTT broker for every Ready broker pod, keeping their state here")
    parser.add_argument("--seed", type=int, default=None, help="makes rate-based faults reproducible")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    cluster = SimulatedCluster(host=args.host, port=args.port, ready_delay_s=args.ready_delay,
                               terminate_delay_s=args.terminate_delay,
                               namespace_delete_delay_s=args.namespace_delete_delay, seed=args.seed,
                               brokers_dir=args.brokers_dir).start()
    path = cluster.write_kubeconfig(args.kubeconfig)
    print(f"simulated Kubernetes API at {cluster.url}; kubeconfig {path}", flush=True)

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    cluster.stop()


if __name__ == "__main__":
    main()
