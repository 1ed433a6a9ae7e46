"""The ``catdog`` command: thin verbs that parse arguments, call one package function and print.

Each verb lives in its own module of this package, beside its parser: ``register(verbs)`` adds the verb's
subparser and points it at the function that runs it. Adding a verb is one new module and one line in
:data:`VERBS`. Nothing here imports TensorFlow until a verb that needs it runs (``catdog --help`` is quick).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from kafka.errors import KafkaError

from catdog import CatdogError
from catdog.cli import (
    broker,
    challenge,
    classify,
    cpus,
    data,
    doctor,
    experiment,
    models,
    predict,
    results,
    retrain,
    room,
    send,
    solutions,
    submit,
    train,
    wall,
)
from catdog.config import Settings, load_settings

# In the order `catdog --help` lists them.
VERBS = (
    data,
    train,
    experiment,
    predict,
    broker,
    send,
    classify,
    retrain,
    models,
    wall,
    results,
    cpus,
    room,
    doctor,
    solutions,
    challenge,
    submit,
)
# Verbs that start TensorFlow: its thread pools are sized, and its start-up chatter muted, first.
TENSORFLOW_VERBS = ("train", "experiment", "predict", "classify", "retrain", "challenge", "submit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="catdog",
        description="Cats vs dogs lab kit: prepare photos, train a quick CNN and a pretrained model, classify.",
        epilog="Settings come from the environment (CATDOG_DATA_SOURCE, CATDOG_WEIGHTS_DIR, …); see the README.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.register(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verb in TENSORFLOW_VERBS:
        from catdog.threads import start_tensorflow

        start_tensorflow()
    try:
        run: Callable[[argparse.Namespace, Settings], int] = args.run
        return run(args, load_settings())
    except CatdogError as error:
        print(f"catdog: error: {error}", file=sys.stderr)
        return 2
    except KafkaError as error:  # one line, never a traceback: the broker said no, or went away
        print(f"catdog: error: Kafka: {type(error).__name__}: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("catdog: interrupted", file=sys.stderr)
        return 130
