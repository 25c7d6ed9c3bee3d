"""How often pulsar-lite stops dispatching a backlog, with its default write-buffer mark and local
Pulsar's: the official client alone, straight to two brokers side by side.

Run: python benchmarks/broker_dispatch_stalls.py
     [--type Exclusive|Failover|Shared|Key_Shared|Reader] [--size 10000]
     [--count 3000] [--tries 300] [--stall 3.0] [--at-once 1]

Starts two pulsar-lite brokers: one with local Pulsar's configuration, whose
``pulsar_channel_write_buffer_high_water_mark_bytes`` is 1 GiB, and one with that line left out
(pulsar-lite's default, 64 KiB). Stores ``--count`` unbatched messages of ``--size`` bytes on a
topic of each, then, ``--tries`` times and alternating between the brokers, reads the backlog from
its earliest message on a new subscription (or a new reader) with the official client's default
receiver queue (1,000), acking each message. A try stalls when no message comes for ``--stall``
seconds before the last; the output gives, per broker, the tries that stalled, where they stopped
(messages read by then), and the copies of a message id received again (pulsar-lite re-dispatches
some to Exclusive and Failover consumers and readers, whatever the mark). With ``--at-once N``,
N topics hold such a backlog and each try reads all of them at once, N consumers (or readers) on
the one connection of a client, as the gateway's sockets share its broker connection; a try then
counts N reads.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from typing import Any

import pulsar

import rxstargate.local._broker as broker_module
from rxstargate.local._broker import Broker

DEFAULT_MARK_CONFIG = 'log_level = "warn"\n\n[metrics]\nenabled = false\n'


def start_broker(config: str, data_dir: str) -> Broker:
    """A pulsar-lite broker with ``config`` as its configuration file."""
    local_config = broker_module._CONFIG
    broker_module._CONFIG = config
    try:
        broker = Broker(data_dir)
        broker.start()
    finally:
        broker_module._CONFIG = local_config
    return broker


def store_backlog(client: Any, size: int, count: int) -> str:
    """A new topic holding ``count`` unbatched messages of ``size`` bytes."""
    topic = f"persistent://public/default/stalls-{uuid.uuid4().hex[:8]}"
    producer = client.create_producer(topic, batching_enabled=False, block_if_queue_full=True)
    for _ in range(count):
        producer.send_async(bytes(size), None)
    producer.flush()
    producer.close()
    return topic


def read_backlog(client: Any, topic: str, kind: str, count: int, stall: float) -> tuple[int, int]:
    """Read ``topic`` from its earliest message: (distinct messages read, copies received)."""
    if kind == "Reader":
        source = client.create_reader(topic, pulsar.MessageId.earliest)
        receive = source.read_next
    else:
        source = client.subscribe(
            topic,
            f"s-{uuid.uuid4().hex[:8]}",
            consumer_type=getattr(pulsar.ConsumerType, kind.replace("_", "")),
            initial_position=pulsar.InitialPosition.Earliest,
        )
        receive = source.receive
    seen: set[tuple[int, int]] = set()
    copies = 0
    try:
        while len(seen) < count:
            try:
                message = receive(int(stall * 1000))
            except pulsar.Timeout:
                break
            message_id = message.message_id()
            position = (message_id.ledger_id(), message_id.entry_id())
            copies += position in seen
            seen.add(position)
            if kind != "Reader":
                source.acknowledge(message)
    finally:
        source.close()
    return len(seen), copies


def read_at_once(
    client: Any, topics: list[str], kind: str, count: int, stall: float
) -> list[tuple[int, int]]:
    """``read_backlog`` of each topic, all at once: what each read."""
    results: list[tuple[int, int]] = [(0, 0)] * len(topics)

    def read(index: int) -> None:
        results[index] = read_backlog(client, topics[index], kind, count, stall)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(topics))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def measure(args: argparse.Namespace, clients: dict[str, Any]) -> None:
    """Store the backlogs on each broker, read them ``args.tries`` times, print what stalled."""
    topics = {
        name: [store_backlog(client, args.size, args.count) for _ in range(args.at_once)]
        for name, client in clients.items()
    }
    stopped: dict[str, list[int]] = {name: [] for name in clients}
    copies = dict.fromkeys(clients, 0)
    started = time.monotonic()
    for _ in range(args.tries):
        for name, client in clients.items():
            reads = read_at_once(client, topics[name], args.type, args.count, args.stall)
            copies[name] += sum(copied for _, copied in reads)
            stopped[name] += [read for read, _ in reads if read < args.count]
    elapsed = time.monotonic() - started
    reads = args.tries * args.at_once
    at_once = f", {args.at_once} at once" if args.at_once > 1 else ""
    print(f"{args.type}, {args.count} of {args.size} B{at_once}: {reads} reads ({elapsed:.0f} s)")
    for name in clients:
        where = f" (after {', '.join(map(str, sorted(stopped[name])))})" if stopped[name] else ""
        print(
            f"  {name}: {len(stopped[name])} of {reads} stalled{where};"
            f" {copies[name]} copies received again"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--type",
        default="Exclusive",
        choices=["Exclusive", "Failover", "Shared", "Key_Shared", "Reader"],
    )
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=3_000)
    parser.add_argument("--tries", type=int, default=300)
    parser.add_argument("--stall", type=float, default=3.0)
    parser.add_argument("--at-once", type=int, default=1)
    args = parser.parse_args()
    configs = {"default mark (64 KiB)": DEFAULT_MARK_CONFIG, "1 GiB": broker_module._CONFIG}
    brokers: list[Broker] = []
    clients: dict[str, Any] = {}
    folders = [tempfile.TemporaryDirectory(prefix="stalls-") for _ in configs]
    try:
        for (name, config), folder in zip(configs.items(), folders, strict=True):
            brokers.append(start_broker(config, folder.name))
            url = f"pulsar://127.0.0.1:{brokers[-1].port}"
            logger = pulsar.ConsoleLogger(pulsar.LoggerLevel.Error)
            clients[name] = pulsar.Client(url, logger=logger)
        measure(args, clients)
    finally:
        for client in clients.values():
            client.close()
        for broker in brokers:
            broker.stop()
        for folder in folders:
            folder.cleanup()


if __name__ == "__main__":
    main()
