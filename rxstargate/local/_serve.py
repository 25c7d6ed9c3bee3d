"""Entry point of the gateway child process: ``python -m rxstargate.local._serve BROKER_URL PORT``.

Prints ``LISTENING <port>`` on stdout once it accepts connections, then runs until SIGTERM/SIGINT.
The token, if any, comes in the RXSTARGATE_GATEWAY_TOKEN environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from rxstargate.local._gateway import Gateway


async def _main(broker_url: str, port: int, token: str | None, log_path: str | None) -> None:
    gateway = Gateway(broker_url, port=port, token=token, log_path=log_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        bound = await gateway.start()
        sys.stdout.write(f"LISTENING {bound}\n")
        sys.stdout.flush()
        # Nobody reads stdout after this line: send stray writes to stderr (the log).
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        await stop.wait()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the gateway until it is told to stop."""
    parser = argparse.ArgumentParser(prog="python -m rxstargate.local._serve")
    parser.add_argument("broker_url")
    parser.add_argument("port", type=int)
    parser.add_argument("--log", default=None)
    args = parser.parse_args(argv)
    token = os.environ.get("RXSTARGATE_GATEWAY_TOKEN")
    asyncio.run(_main(args.broker_url, args.port, token, args.log))


if __name__ == "__main__":
    main()
