"""What every exporter shares: argument parsing, the HTTP server and the one-scrape mode."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CollectorRegistry
from prometheus_client.exposition import generate_latest


def parse_listen(value: str) -> tuple[str, int]:
    """'10.0.0.5:9401' or '[fe80::1]:9401' -> (address, port)."""
    addr, sep, port = value.rpartition(":")
    if not sep or not addr or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen wants ADDRESS:PORT, got {value!r}")
    return addr.strip("[]"), int(port)


def parser(description: str, default_port: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--listen", type=parse_listen, default=("127.0.0.1", default_port),
                   help=f"ADDRESS:PORT to serve /metrics on (default 127.0.0.1:{default_port}); "
                        "a node's private address, never 0.0.0.0 on a public interface")
    p.add_argument("--once", action="store_true", help="print one scrape to stdout and exit")
    return p


def run(args: argparse.Namespace, make_collector: Callable[[], object]) -> int:
    collector = make_collector()
    if args.once:
        registry = CollectorRegistry()
        registry.register(collector)
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    REGISTRY.register(collector)
    addr, port = args.listen
    start_http_server(port, addr=addr)
    # The server runs in a daemon thread; wait for SIGTERM (systemd stop) or SIGINT.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            signal.pause()
    except KeyboardInterrupt:
        return 0
