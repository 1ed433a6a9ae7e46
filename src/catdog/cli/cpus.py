"""``catdog cpus``: the CPU limit the thread pools are sized from, and what TensorFlow runs with."""

from __future__ import annotations

import argparse
import json

from catdog.config import Settings


def register(verbs) -> None:
    cpus = verbs.add_parser(
        "cpus",
        help="show how many threads TensorFlow and the decoders use here",
        description="Show the CPU limit catdog sizes its thread pools from: the container's cgroup CPU quota "
        "(v2 cpu.max, v1 cfs quota/period) rounded up, at most the cores, or $CATDOG_CPU_THREADS.",
    )
    cpus.add_argument("--tensorflow", action="store_true", help="also start TensorFlow and count its threads")
    cpus.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    cpus.set_defaults(run=run_cpus)


def run_cpus(args: argparse.Namespace, settings: Settings) -> int:
    from catdog import threads

    limit = threads.cpu_limit()
    print(f"cpu limit: {limit.threads} thread(s) of {limit.cores} core(s) ({limit.source})")
    if args.tensorflow:
        measured = threads.tensorflow_threads()
        print(
            f"tensorflow: intra-op {measured['intra_op']}, inter-op {measured['inter_op']} threads; "
            f"process threads {measured['process_threads']} after a matmul"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "threads": limit.threads,
                    "cores": limit.cores,
                    "quota": limit.quota,
                    **({"tensorflow": measured} if args.tensorflow else {}),
                }
            )
        )
    return 0
