"""``catdog room``: the folder `oc apply -k` installs for a workshop, and each learner's link."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from catdog.config import Settings


def register(verbs) -> None:
    room = verbs.add_parser(
        "room",
        help="write a workshop room: one Kafka and classifier, a lab per learner (oc apply -k)",
        description="Write a folder that `oc apply -k` installs: the room's shared part (Kafka with SCRAM and "
        "ACLs, topics, the classifier, the image build and pre-puller; deploy/openshift/room/shared) and, for "
        "each learner, a namespace with a notebook (deploy/openshift/room/learner), its token, its KafkaUser and "
        "password. Prints each learner's JupyterLab URL with its token. Run again with more names to add "
        "learners: those already in the folder keep their tokens and passwords.",
    )
    who = room.add_mutually_exclusive_group()  # one of them, unless `catdog room status`
    who.add_argument("--learners", action="append", metavar="NAMES", help="learners' names, comma-separated")
    who.add_argument("--learners-file", type=Path, metavar="FILE", help="a file with one learner's name a line")
    who.add_argument("--count", type=int, metavar="N", help="N learners named PREFIX-01 … PREFIX-N")
    room.add_argument("--prefix", default="learner", help="names for --count (default: learner)")
    room.add_argument(
        "--out",
        type=Path,
        default=Path("room"),
        metavar="DIR",
        help="the folder to write (default: ./room; git ignores it)",
    )
    room.add_argument(
        "--apps-domain",
        metavar="DOMAIN",
        help="the cluster's apps domain, for the printed URLs "
        "(oc get ingresses.config cluster -o jsonpath='{.spec.domain}')",
    )
    room.add_argument(
        "--openshift-ai",
        action="store_true",
        help="a data science project with a workbench per "
        "learner (OpenShift AI / Open Data Hub dashboard), instead of a plain notebook and token",
    )
    room.add_argument(
        "--dashboard-namespace",
        default="redhat-ods-applications",
        metavar="NS",
        help="where the dashboard lists workbench images (default: redhat-ods-applications; "
        "Open Data Hub: opendatahub)",
    )
    room.add_argument(
        "--kafka-nodes",
        type=int,
        choices=(1, 3),
        metavar="N",
        help="the room's Kafka nodes: 1 (the first time's default; its data on a volume, kept across a "
        "restart of its pod) or 3 (replicated, a node's loss kept too, three times the cost); kept for "
        "later runs",
    )
    room.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="deploy/openshift of this kit (default: the one in the lab folder)",
    )
    room.set_defaults(run=run_room)
    actions = room.add_subparsers(dest="action", metavar="status")
    status = actions.add_parser(
        "status",
        help="the instructor's board in the terminal: every learner's progress and lab, hands first",
        description="Print the board the moderator's page shows: one row per learner of the room (hands "
        "first, then silent labs, then by progress), a column per exercise (✓ done, … tried, · untouched), "
        "photos, votes and the challenge's best. Reads the wall with the moderator's key from the room folder.",
    )
    status.add_argument(
        "--room", type=Path, default=Path("room"), metavar="DIR", help="the room folder (default: ./room)"
    )
    status.add_argument("--wall", metavar="URL", help="the wall's address (default: its Route, from the folder)")
    status.add_argument("--watch", action="store_true", help="refresh every --every seconds until Ctrl+C")
    status.add_argument("--every", type=float, default=5.0, metavar="S", help="seconds between refreshes (5)")
    status.set_defaults(run=run_status)


def run_status(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from catdog.room.folder import read_room
    from catdog.room.learners import wall_url
    from catdog.wall.board import board_table, read_board

    state = read_room(args.room)
    url = args.wall or wall_url(state.get("apps_domain"))
    if not url:
        print(f"{args.room} names no apps domain: pass --wall URL (oc get route catdog-wall)", file=sys.stderr)
        return 2
    while True:
        try:
            table = board_table(read_board(url, state["moderator_key"]))
        except (OSError, ValueError) as error:
            print(f"cannot read the board from the wall at {url}: {error}", file=sys.stderr)
            if not args.watch:
                return 1
            table = None
        if table is not None:
            print(("\033[2J\033[H" if args.watch else "") + table, flush=True)
        if not args.watch:
            return 0
        time.sleep(args.every)


def run_room(args: argparse.Namespace, settings: Settings) -> int:
    from catdog.room.folder import SECRETS_FILE, write_room
    from catdog.room.learners import ROOM_NAMESPACE, learners_named, wall_url

    if not (args.learners or args.learners_file or args.count):
        print("catdog room: give --learners, --learners-file or --count (or `catdog room status`)", file=sys.stderr)
        return 2

    names = None
    if args.learners:
        names = [name for item in args.learners for name in item.split(",")]
    if args.learners_file:
        names = (names or []) + args.learners_file.read_text().splitlines()
    learners = learners_named(names, args.count, prefix=args.prefix)
    manifests = args.manifests or settings.lab_dir / "deploy" / "openshift"
    state = write_room(
        args.out,
        learners,
        manifests,
        openshift_ai=args.openshift_ai,
        dashboard_namespace=args.dashboard_namespace,
        apps_domain=args.apps_domain,
        kafka_nodes=args.kafka_nodes,
    )
    print_learners(args, learners, state)
    wall = wall_url(state["apps_domain"]) or f"(oc get route catdog-wall -n {ROOM_NAMESPACE})"
    projector = f"{wall}/#code={state['room_code']}"
    print(f"\nThe wall, for the projector (its QR code takes phones to the upload page): {projector}")
    print(
        f"The moderator's page, for you alone (hide a photo, pause uploads, change the code, block a phone): "
        f"{wall}/moderate#key={state['moderator_key']}"
    )
    total = len(state["learners"])
    print(
        f"\n{args.out}: the room and {total} learner(s). Install: oc apply -k {args.out}  "
        f"(tokens, passwords and the CA key are in {args.out}/{SECRETS_FILE}: keep the folder out of git)",
        file=sys.stderr,
    )
    return 0


def print_learners(args: argparse.Namespace, learners: list, state: dict) -> None:
    """The table the instructor hands out: each learner's namespace and where their lab opens."""
    from catdog.room.learners import lab_url, workbench_url

    width = max(7, *(len(learner.name) for learner in learners))
    if args.openshift_ai:
        print(f"{'learner':<{width}}  {'project':<24} workbench (the learner logs in with their OpenShift account)")
    else:
        print(f"{'learner':<{width}}  {'namespace':<24} JupyterLab (the token is the password: hand each its own line)")
    for learner in learners:
        if args.openshift_ai:
            where = workbench_url(learner, args.apps_domain, args.dashboard_namespace)
        else:
            where = lab_url(learner, state["learners"][learner.slug]["token"], args.apps_domain)
        print(f"{learner.name:<{width}}  {learner.namespace:<24} {where}")
