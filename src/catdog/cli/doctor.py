"""``catdog doctor``: the instructor's pre-flight check of a cluster before the workshop."""

from __future__ import annotations

import argparse
from pathlib import Path

from catdog import CatdogError
from catdog.config import Settings


def register(verbs) -> None:
    doctor = verbs.add_parser(
        "doctor",
        help="the pre-flight check of a cluster before the workshop (after oc apply)",
        description="Check, one line each, what the learners' first minutes need: AMQ Streams installed, "
        "the Kafka cluster Ready, the topics with their partitions and size limits, the classifier ready, a "
        "photo classified end to end and a non-image on the dead-letter topic (with the lab's KAFKA_* "
        "settings, as `catdog send`), a learner refused writing predictions (oc exec in their notebook), each "
        "notebook's Route answering with its token only, the wall, the room's challenge (when on: its answers "
        "and the published set agree), the image pulled on every node. Reads the "
        "cluster with `oc get -o json` as the logged-in user. Exit status 1 if any check failed.",
    )
    doctor.add_argument(
        "--room",
        type=Path,
        metavar="DIR",
        help="the folder `catdog room` wrote: check the room "
        "(namespace catdog-room, every learner's notebook and token, their ACLs)",
    )
    doctor.add_argument(
        "--namespace",
        "-n",
        metavar="NS",
        help="the lab's namespace (default: the room's with --room, else oc's current project)",
    )
    doctor.add_argument(
        "--operator-namespace",
        default="openshift-operators",
        metavar="NS",
        help="where the AMQ Streams Subscription is (default: openshift-operators)",
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the classifier's result and the dead letter (default 60)",
    )
    doctor.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="trust this CA for the Routes (a cluster whose "
        "router certificate is self-signed: oc extract -n openshift-ingress-operator "
        "secret/router-ca --keys=tls.crt)",
    )
    doctor.add_argument(
        "--connect-to",
        action="append",
        default=[],
        metavar="HOST1:PORT1:HOST2:PORT2",
        help="as curl's: reach the Routes at another address (HOST1/PORT1 empty: any), e.g. "
        "::10.0.0.5:443 before the apps domain's DNS answers; repeatable",
    )
    doctor.add_argument("--oc", metavar="PATH", help="the oc (or kubectl) to run (default: oc, else kubectl)")
    doctor.add_argument("--json", action="store_true", help="print the checks and verdict as JSON")
    doctor.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.doctor.cluster import Check, Cluster, Http, find_oc, parse_connect_to
    from catdog.doctor.report import as_json, format_check, room_namespace, run_checks, verdict
    from catdog.room.folder import read_room

    room_state = read_room(args.room) if args.room else None
    try:
        connect_to = dict(parse_connect_to(text) for text in args.connect_to)
    except ValueError as error:
        raise CatdogError(str(error)) from None
    cluster = Cluster(find_oc(args.oc), room_namespace(room_state, args.namespace))
    http = Http(args.ca_file, connect_to)

    def report(check: Check) -> None:
        if not args.json:
            print(format_check(check), flush=True)

    checks = run_checks(settings, cluster, http, room_state, args.operator_namespace, args.timeout, report)
    print(as_json(checks) if args.json else verdict(checks))
    return 1 if any(check.status == "FAIL" for check in checks) else 0
