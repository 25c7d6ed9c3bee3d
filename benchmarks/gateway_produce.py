"""Pipelined produce throughput: local Pulsar's gateway against a minimal ok-answering server.

Both servers run in their own processes and are driven by the same websocket-client loop (a sender
thread and an ack-reading thread, at most ``--in-flight`` unacknowledged frames). Prints msgs/s of
each (median of ``--runs``) and the ratio gateway / minimal server, and each server process's CPU
per message (on a busy machine, where rates swing with the load, the steadier comparison; the
gateway's includes its broker client's threads, not the broker).

    python benchmarks/gateway_produce.py --messages 50000 --payload-size 100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid

import websocket
from _client_util import pid_cpu


def serve_ok() -> None:
    """The minimal server: answers every frame with an ok ack echoing its context."""
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(connection: ServerConnection) -> None:
        async for text in connection:
            context = json.loads(text).get("context")
            await connection.send(
                json.dumps({"result": "ok", "messageId": "CAAQAw==", "context": context})
            )

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.Future()

    asyncio.run(main())


def drive(url: str, messages: int, payload_size: int, in_flight: int, rate: float = 0.0) -> float:
    """Send ``messages`` frames, at most ``in_flight`` unacked, paced at ``rate`` a second if
    not 0; returns acknowledged messages per second."""
    sock = websocket.create_connection(url, timeout=60)
    payload = base64.b64encode(b"x" * payload_size).decode("ascii")
    window = threading.Semaphore(in_flight)
    failures: list[str] = []

    def read_acks() -> None:
        for _ in range(messages):
            ack = json.loads(sock.recv())
            if ack["result"] != "ok":
                failures.append(ack["result"])
            window.release()

    reader = threading.Thread(target=read_acks, name="bench-acks")
    start = time.perf_counter()
    reader.start()
    for i in range(messages):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        window.acquire()
        sock.send(f'{{"payload":"{payload}","context":"{i}"}}')
    reader.join()
    elapsed = time.perf_counter() - start
    sock.close()
    if failures:
        raise SystemExit(f"{len(failures)} sends failed, first: {failures[0]}")
    return messages / elapsed


def main() -> None:
    """Run the comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--payload-size", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve-ok", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ok:
        serve_ok()
        return

    from rxstargate.local import LocalPulsar

    ok_server = subprocess.Popen(
        [sys.executable, __file__, "--serve-ok"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert ok_server.stdout is not None
        ok_url = f"ws://127.0.0.1:{int(ok_server.stdout.readline())}/ws/v2/producer/x/y/z/t"
        with LocalPulsar() as local:
            drive(ok_url, 2000, args.payload_size, args.in_flight)  # warm up both
            warm = f"{local.ws_url}/ws/v2/producer/persistent/public/default/warm"
            drive(warm, 2000, args.payload_size, args.in_flight)
            ok_rates, gateway_rates = [], []
            ok_cpu, gateway_cpu = [], []
            gateway_pid = local.gateway_pid
            assert gateway_pid is not None
            for _ in range(args.runs):
                before = pid_cpu(ok_server.pid)
                ok_rates.append(drive(ok_url, args.messages, args.payload_size, args.in_flight))
                ok_cpu.append((pid_cpu(ok_server.pid) - before) / args.messages * 1e6)
                topic = f"persistent/public/default/bench-{uuid.uuid4().hex[:8]}"
                gateway_url = f"{local.ws_url}/ws/v2/producer/{topic}"
                before = pid_cpu(gateway_pid)
                gateway_rates.append(
                    drive(gateway_url, args.messages, args.payload_size, args.in_flight)
                )
                gateway_cpu.append((pid_cpu(gateway_pid) - before) / args.messages * 1e6)
    finally:
        ok_server.terminate()
        ok_server.wait()
    ok, gateway = statistics.median(ok_rates), statistics.median(gateway_rates)
    print(f"messages={args.messages} payload={args.payload_size}B in-flight={args.in_flight}")
    print(
        f"minimal ok-server: {ok:>9,.0f} msgs/s  (runs: {', '.join(f'{r:,.0f}' for r in ok_rates)})"
    )
    print(
        f"local gateway:     {gateway:>9,.0f} msgs/s  "
        f"(runs: {', '.join(f'{r:,.0f}' for r in gateway_rates)})"
    )
    print(f"ratio gateway / minimal: {gateway / ok:.2f}")
    ok_us, gateway_us = statistics.median(ok_cpu), statistics.median(gateway_cpu)
    print(
        f"server CPU per message: minimal {ok_us:.1f} µs, gateway {gateway_us:.1f} µs "
        f"(ratio minimal / gateway: {ok_us / gateway_us:.2f})"
    )


if __name__ == "__main__":
    main()
