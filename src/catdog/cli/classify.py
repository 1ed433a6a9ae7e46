"""``catdog classify``: the classifier service (both models, Kafka in and out)."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog.cli.options import log_to_stderr
from catdog.config import Settings


def register(verbs) -> None:
    classify = verbs.add_parser(
        "classify",
        help="run the classifier service (both models, Kafka in and out)",
        description="Consume the images topic as a consumer group, classify each image with both models, "
        "publish one JSON result per image to the predictions topic, and send anything that is not a usable "
        "image to the dead-letter topic with the reason. Serves Prometheus metrics and health probes. "
        "Stops cleanly on SIGTERM or Ctrl-C.",
    )
    classify.add_argument("--models", type=Path, metavar="DIR", help="folder with quick.keras and pretrained.keras")
    classify.add_argument(
        "--metrics-port",
        type=int,
        help="HTTP port for /metrics, /healthz, /readyz (default: $CATDOG_METRICS_PORT or 8000; 0 picks a free one)",
    )
    classify.set_defaults(run=run_classify)


def run_classify(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.service.classifier import serve

    log_to_stderr()
    port = settings.kafka.metrics_port if args.metrics_port is None else args.metrics_port
    serve(settings, args.models or settings.models_dir, port)
    return 0
