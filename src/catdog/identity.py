"""Who sent a record, as only they can say it: a per-learner signing key that `catdog room` issues.

A Kafka record carries no trace of the principal that produced it: the ``learner`` header is whatever the
sender wrote, so Ada could make a result say Bob, or vote as Bob. In a room each learner's notebook holds a
key of its own (CATDOG_LEARNER_KEY, from the Secret in their namespace) and signs what it sends: an HMAC
over the name it claims, the record's key and the value's sha256. The services that must know who sent
something (the classifier for results, the retraining for votes) hold the room's table of keys
(CATDOG_LEARNER_KEYS, a mounted Secret) and believe a name only under its own key. One relay, the wall,
signs for the phones it issued cookies to: what it relays is shown as a phone's, never as a learner's.

A signature also covers when it was made (``signed_at``, the signer's clock in ms) and a nonce, so every
signed record is unique and ordered by its signer: whoever counts records (:class:`Replays`) refuses a
copy of one already counted (anyone who can read a topic can send its records again), a record signed
more than :data:`MAX_AHEAD_MS` ahead of the reader's clock, and, per subject, one older than the latest
counted (a vote Ada has since corrected, sent again). The signer's clock orders only the signer's own
records; nothing depends on the timestamp the producer of a copy chose.

Why signatures and not a topic per learner: the same protection needs one header instead of two topics per
learner (100 more for a room of 50, each with its KafkaTopic), and every reader keeps reading one topic.
Where no table is set (one learner on a laptop, `make lab`) names are taken as written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from catdog import CatdogError

SIGNATURE_HEADER = "learner-signature"
KEY_BYTES = 32
CONTEXT = b"catdog-record-v2"  # a signature made for anything else (v1 had no time or nonce) never verifies here
NONCE_BYTES = 12
MAX_AHEAD_MS = 120_000  # a signer's clock may run this far ahead of the reader's; further is "from the future"
REMEMBERED = 500_000  # signed records a reader remembers (a room of 50 makes a few thousand an hour)


class IdentityError(CatdogError, ValueError):
    """A key table that cannot be read."""


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def signature(key: str, signer: str, learner: str, record_key: bytes, value: bytes, signed_at: int, nonce: str) -> str:
    """The hex HMAC-SHA256, under ``key``, of who signs, who they say sent it, the record's key and value,
    when it was signed and its nonce."""
    message = b"\0".join(
        (
            CONTEXT,
            signer.encode(),
            learner.encode(),
            record_key,
            hashlib.sha256(value).digest(),
            str(signed_at).encode(),
            nonce.encode(),
        )
    )
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()


def signed_header(
    signer: str, key: str, learner: str, record_key: bytes, value: bytes, signed_at: int | None = None
) -> tuple[str, bytes]:
    """The header that goes with a record: ``<signer>:<signed at, ms>:<nonce>:<signature>``."""
    signed_at = int(time.time() * 1000) if signed_at is None else signed_at
    nonce = secrets.token_hex(NONCE_BYTES)
    made = signature(key, signer, learner, record_key, value, signed_at, nonce)
    return SIGNATURE_HEADER, f"{signer}:{signed_at}:{nonce}:{made}".encode()


@dataclass(frozen=True)
class Sender:
    """Who sent a record, as far as the signature shows: ``name`` to show, ``verified`` whether a key vouched
    for it, ``phone`` whether a relay spoke for a phone."""

    name: str
    verified: bool
    phone: bool = False
    signer: str = ""
    signed_at: int = 0  # ms since the epoch, the signer's clock
    nonce: str = ""


@dataclass(frozen=True)
class Keys:
    """The room's key table: each learner's key under the name they send as, and the relays' (the wall)."""

    learners: Mapping[str, str] = field(default_factory=dict)
    relays: Mapping[str, str] = field(default_factory=dict)

    def sender(self, learner: str, header: bytes | str | None, record_key: bytes, value: bytes) -> Sender:
        """The name a record may be shown under: ``learner`` when signed with that learner's own key, ``learner
        (phone)`` when a relay signed it, else no name (``verified`` False)."""
        signer, signed_at, nonce, given = _fields(header)
        key = self.learners.get(signer) if signer == learner else self.relays.get(signer)
        if (
            not key
            or not given
            or not hmac.compare_digest(given, signature(key, signer, learner, record_key, value, signed_at, nonce))
        ):
            return Sender("", False)
        if signer in self.relays:
            return Sender(f"{learner} (phone)" if learner else "a phone", True, True, signer, signed_at, nonce)
        return Sender(learner, True, False, signer, signed_at, nonce)


def _fields(header: bytes | str | None) -> tuple[str, int, str, str]:
    """A signature header's signer, time, nonce and signature; empty where it is not one."""
    parts = (header.decode("latin-1") if isinstance(header, bytes) else header or "").split(":")
    if len(parts) != 4 or not parts[1].isdigit() or len(parts[1]) > 15:
        return "", 0, "", ""
    return parts[0], int(parts[1]), parts[2], parts[3]


class Replays:
    """What a counter of signed records has counted: each (signer, nonce) and where it was first read, and
    each subject's latest signing time. :meth:`problem` says why a verified record must not count, or None.
    A record read again at the same place (a reader starting over, a redelivery) is not a copy."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.seen: OrderedDict[tuple[str, str], object] = OrderedDict()
        self.latest: OrderedDict[object, int] = OrderedDict()
        self.remembered = remembered

    def problem(self, sender: Sender, where: object, subject: object = None, now_ms: int | None = None) -> str | None:
        if not sender.verified:
            return None
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        first = self.seen.get((sender.signer, sender.nonce))
        if first is not None and first != where:
            return f"replay: a copy of a record {sender.signer} signed, first read at {_where(first)}"
        if sender.signed_at > now_ms + MAX_AHEAD_MS:
            return (
                f"from the future: signed by {sender.signer} {(sender.signed_at - now_ms) / 1000:.0f} s ahead of "
                "this reader's clock"
            )
        if subject is not None and first is None and sender.signed_at < self.latest.get(subject, 0):
            return (
                f"replay: older than the latest record {sender.signer} signed for it (a copy sent again, or reordered)"
            )
        self._remember(self.seen, (sender.signer, sender.nonce), where)
        if subject is not None:
            self._remember(self.latest, subject, max(sender.signed_at, self.latest.get(subject, 0)))
        return None

    def _remember(self, table: OrderedDict, key: object, value: object) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.remembered:
            table.popitem(last=False)


def _where(where: object) -> str:
    if isinstance(where, tuple) and len(where) == 3:
        return f"{where[0]}[{where[1]}]@{where[2]}"
    return str(where)


def read_keys(path: Path | None) -> Keys | None:
    """The key table at ``path`` (JSON: {"learners": {name: key}, "relays": {name: key}}), None without one."""
    if path is None:
        return None
    try:
        table = json.loads(Path(path).read_text())
        keys = Keys(dict(table.get("learners", {})), dict(table.get("relays", {})))
        for key in (*keys.learners.values(), *keys.relays.values()):
            bytes.fromhex(key)
    except (OSError, ValueError, AttributeError) as error:
        raise IdentityError(f"CATDOG_LEARNER_KEYS={path}: not a key table ({error})") from error
    return keys


def sender_as_written(learner: str) -> Sender:
    """Where there is no key table: the name as the sender wrote it."""
    return Sender(learner, False)


__all__ = [
    "IdentityError",
    "KEY_BYTES",
    "MAX_AHEAD_MS",
    "Keys",
    "Replays",
    "SIGNATURE_HEADER",
    "Sender",
    "new_key",
    "read_keys",
    "sender_as_written",
    "signature",
    "signed_header",
]
