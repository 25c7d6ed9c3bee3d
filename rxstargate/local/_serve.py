"""Entry point of the gateway child process: ``python -m rxstargate.local._serve BROKER_URL PORT``.

Prints ``LISTENING <port>`` on stdout once it accepts connections, then runs until SIGTERM/SIGINT.
The token, if any, comes in the RXSTARGATE_GATEWAY_TOKEN environment variable. Log lines go to
stderr (the parent points it at ``gateway.log``), each with a timestamp and the socket it is about.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from urllib.parse import urlsplit

from rxstargate.exceptions import ConfigurationError
from rxstargate.local._eventloop import LOOP_KINDS, loop_factory, loop_name
from rxstargate.local._gateway import Gateway
from rxstargate.local._keepalive import (
    CLOSE_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_UNANSWERED,
    TCP_KEEPALIVE,
    Keepalive,
)

# What the gateway may take to stop on SIGTERM; the parent kills it a little later anyway.
STOP_SECONDS = 1.0

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


async def _main(args: argparse.Namespace, token: str | None) -> None:
    gateway = Gateway(
        args.broker_url,
        port=args.port,
        token=token,
        log_path=args.log,
        keepalive=Keepalive.from_arguments(
            args.idle_timeout,
            args.ping_interval,
            args.ping_timeout,
            args.tcp_keepalive,
            args.max_unanswered,
            args.close_wait,
        ),
        broker_metadata=args.broker_metadata,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    clean = False
    try:
        bound = await gateway.start()
        logging.getLogger("rxstargate.gateway").info("event loop: %s", loop_name(loop))
        sys.stdout.write(f"LISTENING {bound}\n")
        sys.stdout.flush()
        # Nobody reads stdout after this line: send stray writes to stderr (the log).
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await stop.wait()
        logging.getLogger("rxstargate.gateway").info("stopping")
    finally:
        clean = await gateway.stop(timeout=STOP_SECONDS)
        if not clean:
            # Broker-side closes are still blocked in threads that the interpreter would wait
            # for at exit: leave now, but end the broker connection with a FIN first. Closing a
            # socket with unread data sends a reset, and pulsar-lite never releases the
            # consumers of a connection that ended with a reset.
            end_connections_to(args.broker_url)
            logging.shutdown()
            os._exit(0)


def end_connections_to(url: str) -> int:
    """Shut down (FIN, both ways) this process's TCP connections to ``url``'s host and port.

    Linux only (it walks /proc/self/fd); elsewhere it does nothing. Returns how many it ended.
    """
    target = urlsplit(url)
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    ended = 0
    for name in descriptors:
        try:
            duplicate = os.dup(int(name))
        except (OSError, ValueError):
            continue  # closed since the listing
        try:
            sock = socket.socket(fileno=duplicate)
        except OSError:  # not a socket
            os.close(duplicate)
            continue
        with contextlib.closing(sock):  # closes the duplicate only
            try:
                if sock.type != socket.SOCK_STREAM:
                    continue
                host, port = sock.getpeername()[:2]
            except (OSError, ValueError, TypeError):
                continue
            if port == target.port and host in (target.hostname, "::ffff:" + str(target.hostname)):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    ended += 1
    return ended


def main(argv: list[str] | None = None) -> None:
    """Run the gateway until it is told to stop."""
    parser = argparse.ArgumentParser(prog="python -m rxstargate.local._serve")
    parser.add_argument("broker_url")
    parser.add_argument("port", type=int)
    parser.add_argument("--log", default=None, help="the broker client's log file")
    parser.add_argument("--idle-timeout", type=float, default=IDLE_TIMEOUT, help="0: never")
    parser.add_argument("--ping-interval", type=float, default=0.0, help="0: no pings")
    parser.add_argument("--ping-timeout", type=float, default=0.0, help="0: never drop")
    parser.add_argument(
        "--tcp-keepalive",
        default=",".join(map(str, TCP_KEEPALIVE)),
        help="idle seconds, probe interval, probe count",
    )
    parser.add_argument("--max-unanswered", type=int, default=MAX_UNANSWERED)
    parser.add_argument("--close-wait", type=float, default=CLOSE_TIMEOUT)
    parser.add_argument(
        "--broker-metadata", default=None, help="pulsar-lite's metadata file (topic discovery)"
    )
    parser.add_argument(
        "--loop", choices=LOOP_KINDS, default="auto", help="auto: uvloop when it is installed"
    )
    args = parser.parse_args(argv)
    try:
        factory = loop_factory(args.loop)
    except ConfigurationError as exc:
        parser.error(str(exc))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT)
    logging.captureWarnings(True)  # warnings get a timestamp too
    logging.getLogger("rxstargate.gateway.websockets").setLevel(logging.WARNING)
    token = os.environ.get("RXSTARGATE_GATEWAY_TOKEN")
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_main(args, token))


if __name__ == "__main__":
    main()
