"""Pipelined consume throughput: local Pulsar's gateway against a minimal message-sending server.

The minimal server sends ConsumerMessage frames (the gateway's shape, 100 B payloads) with at
most ``--window`` unacknowledged and reads the acks; the gateway delivers a backlog produced
beforehand, with ``receiverQueueSize`` = ``--window``. Both run in their own processes and are
read by the same websocket-client loop (receive a frame, parse it, send its ack). Prints msgs/s
of each (median of ``--runs``, interleaved) and the ratio gateway / minimal server, and each
server process's CPU per message (the steadier comparison on a busy machine).

    python benchmarks/gateway_consume.py --messages 50000 --payload-size 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import websocket
from _client_util import pid_cpu
from gateway_produce import drive

MESSAGE_ID = base64.b64encode(bytes(range(12))).decode("ascii")


def serve_messages(payload_size: int, window: int) -> None:
    """The minimal server: sends ``?messages=N`` frames, at most ``window`` unacked, reads acks."""
    from websockets.asyncio.server import ServerConnection, serve

    payload = base64.b64encode(b"x" * payload_size).decode("ascii")

    def frame(i: int) -> str:
        return (
            f'{{"messageId":"{MESSAGE_ID}{i}","payload":"{payload}","properties":{{}},'
            f'"publishTime":"2026-01-02T03:04:05.678Z","redeliveryCount":0}}'
        )

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        messages = int(parse_qs(urlsplit(connection.request.path).query)["messages"][0])
        credit = asyncio.Semaphore(window)

        async def read_acks() -> None:
            async for text in connection:
                json.loads(text)["messageId"]
                credit.release()

        reader = asyncio.ensure_future(read_acks())
        for i in range(messages):
            await credit.acquire()
            await connection.send(frame(i))
        await reader

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    asyncio.run(main())


def consume(url: str, messages: int) -> float:
    """Receive and ack ``messages`` frames; returns messages per second."""
    sock = websocket.create_connection(url, timeout=60)
    recv, send = sock.recv, sock.send
    start = time.perf_counter()
    for _ in range(messages):
        send(f'{{"messageId":"{json.loads(recv())["messageId"]}"}}')
    elapsed = time.perf_counter() - start
    sock.close()
    return messages / elapsed


def main() -> None:
    """Run the comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_messages(args.payload_size, args.window)
        return

    from rxstargate.local import LocalPulsar

    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve",
            f"--payload-size={args.payload_size}",
            f"--window={args.window}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        minimal_url = f"ws://127.0.0.1:{int(server.stdout.readline())}/ws/v2/consumer/x/y/z/t/s"
        with LocalPulsar() as local:

            def gateway_backlog(messages: int) -> str:
                topic = f"persistent/public/default/bench-{uuid.uuid4().hex[:8]}"
                subscribe = (
                    f"{local.ws_url}/ws/v2/consumer/{topic}/bench"
                    f"?subscriptionInitialPosition=Earliest&receiverQueueSize={args.window}"
                )
                websocket.create_connection(subscribe, timeout=60).close()  # keeps the backlog
                drive(f"{local.ws_url}/ws/v2/producer/{topic}", messages, args.payload_size, 1000)
                return subscribe

            consume(f"{minimal_url}?messages=2000", 2000)  # warm up both
            consume(gateway_backlog(2000), 2000)
            minimal_rates, gateway_rates = [], []
            minimal_cpu, gateway_cpu = [], []
            gateway_pid = local.gateway_pid
            assert gateway_pid is not None
            for _ in range(args.runs):
                minimal = f"{minimal_url}?messages={args.messages}"
                before = pid_cpu(server.pid)
                minimal_rates.append(consume(minimal, args.messages))
                minimal_cpu.append((pid_cpu(server.pid) - before) / args.messages * 1e6)
                backlog = gateway_backlog(args.messages)
                before = pid_cpu(gateway_pid)
                gateway_rates.append(consume(backlog, args.messages))
                gateway_cpu.append((pid_cpu(gateway_pid) - before) / args.messages * 1e6)
    finally:
        server.terminate()
        server.wait()
    minimal, gateway = statistics.median(minimal_rates), statistics.median(gateway_rates)
    print(f"messages={args.messages} payload={args.payload_size}B window={args.window}")
    runs = ", ".join(f"{r:,.0f}" for r in minimal_rates)
    print(f"minimal server: {minimal:>9,.0f} msgs/s  (runs: {runs})")
    runs = ", ".join(f"{r:,.0f}" for r in gateway_rates)
    print(f"local gateway:  {gateway:>9,.0f} msgs/s  (runs: {runs})")
    print(f"ratio gateway / minimal: {gateway / minimal:.2f}")
    minimal_us, gateway_us = statistics.median(minimal_cpu), statistics.median(gateway_cpu)
    print(
        f"server CPU per message: minimal {minimal_us:.1f} µs, gateway {gateway_us:.1f} µs "
        f"(ratio minimal / gateway: {minimal_us / gateway_us:.2f})"
    )


if __name__ == "__main__":
    main()
