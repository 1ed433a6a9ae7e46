"""``catdog wall``: the room's wall, for the projector and the phones."""

from __future__ import annotations

import argparse

from catdog.cli.options import log_to_stderr
from catdog.config import ConfigError, Settings

# A room's code comes with the room's secret (both from `catdog room`'s Secrets). A wall given the code
# alone would sign the phones' joins with a key of its own: a phone that joined on one replica, or before
# a restart, would be refused (401) by the next. Given neither (a laptop), both are made here.
WALL_SECRET_MISSING = (
    "CATDOG_WALL_SECRET is not set, but CATDOG_ROOM_CODE is: the wall refuses to start, or each "
    "replica (and each restart) would refuse the phones another one let in. In a room it comes "
    "from the Secret catdog-wall-secret (key `secret`, written by `catdog room`); elsewhere set "
    "32 or more random characters, the same for every replica"
)


def register(verbs) -> None:
    wall = verbs.add_parser(
        "wall",
        help="run the room's wall: phones send photos, the projector shows every verdict live",
        description="Serve the wall page (for the projector: each photo's thumbnail with both verdicts as it is "
        "classified, the room's counts, a QR code of the upload page) and the upload page (for phones: take or "
        "pick a photo, see its verdicts, say right or wrong, which goes to the feedback topic). Both need the "
        "room's code: $CATDOG_ROOM_CODE, or a fresh one printed here with the two links. A given code needs "
        "the room's $CATDOG_WALL_SECRET too (it signs the phones' joins on every replica). Stops on SIGTERM or "
        "Ctrl-C.",
    )
    wall.add_argument(
        "--host",
        help="address to listen on (default: $CATDOG_WALL_HOST or 127.0.0.1; 0.0.0.0 for phones on the same network)",
    )
    wall.add_argument("--port", type=int, help="port (default: $CATDOG_WALL_PORT or 8001; 0 picks a free one)")
    wall.set_defaults(run=run_wall)


def run_wall(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    from dataclasses import replace

    from catdog import wall
    from catdog.config import make_room_code, new_moderator_key, new_wall_secret

    log_to_stderr()
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its connection chatter, not the wall's news
    config = settings.wall
    config = replace(config, host=args.host or config.host, port=config.port if args.port is None else args.port)
    base = config.url or f"http://{config.host}:{config.port}"
    if config.room_code and not config.secret:  # a room's wall: every replica must sign joins alike
        raise ConfigError(WALL_SECRET_MISSING)
    if config.room_code:  # given (a pod's Secret): a log is no place for it
        print(f"Wall (projector): {base}/ (the room's code: CATDOG_ROOM_CODE)", flush=True)
    else:  # made here, with the secret that signs joins: the instructor's two links (the code rides in the
        # fragment, which no browser sends)
        config = replace(config, room_code=make_room_code(), secret=config.secret or new_wall_secret())
        print(f"Wall (projector): {base}/#code={config.room_code}", flush=True)
        print(f"Upload (phones):  {wall.upload_url(base, config.room_code)}", flush=True)
    if not config.moderator_key:  # made here: the instructor's alone (given: CATDOG_WALL_MODERATOR_KEY)
        config = replace(config, moderator_key=new_moderator_key())
        print(f"Moderator (you):  {base}/moderate#key={config.moderator_key}", flush=True)
    wall.serve(replace(settings, wall=config))
    return 0
