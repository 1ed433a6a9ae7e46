"""Who sent a record, as only they can say it: a per-learner signing key that `catdog room` issues.

A Kafka record carries no trace of the principal that produced it: the ``learner`` header is whatever the
sender wrote, so Ada could make a result say Bob, or vote as Bob. In a room each learner's notebook holds a
key of its own (CATDOG_LEARNER_KEY, from the Secret in their namespace) and signs what it sends: an HMAC
over the name it claims, the record's key and the value's sha256. The services that must know who sent
something (the classifier for results, the retraining for votes) hold the room's table of keys
(CATDOG_LEARNER_KEYS, a mounted Secret) and believe a name only under its own key. One relay, the wall,
signs for the phones it issued cookies to: what it relays is shown as a phone's, never as a learner's.

Why signatures and not a topic per learner: the same protection needs one header instead of two topics per
learner (100 more for a room of 50, each with its KafkaTopic), and every reader keeps reading one topic.
Where no table is set (one learner on a laptop, `make lab`) names are taken as written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from catdog import CatdogError

SIGNATURE_HEADER = "learner-signature"
KEY_BYTES = 32
CONTEXT = b"catdog-record-v1"  # a signature made for anything else never verifies here


class IdentityError(CatdogError, ValueError):
    """A key table that cannot be read."""


def new_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def signature(key: str, signer: str, learner: str, record_key: bytes, value: bytes) -> str:
    """The hex HMAC-SHA256, under ``key``, of who signs, who they say sent it, the record's key and value."""
    message = b"\0".join((CONTEXT, signer.encode(), learner.encode(), record_key, hashlib.sha256(value).digest()))
    return hmac.new(bytes.fromhex(key), message, hashlib.sha256).hexdigest()


def signed_header(signer: str, key: str, learner: str, record_key: bytes, value: bytes) -> tuple[str, bytes]:
    """The header that goes with a record: ``<signer>:<signature>``."""
    return SIGNATURE_HEADER, f"{signer}:{signature(key, signer, learner, record_key, value)}".encode()


@dataclass(frozen=True)
class Sender:
    """Who sent a record, as far as the signature shows: ``name`` to show, ``verified`` whether a key vouched
    for it, ``phone`` whether a relay spoke for a phone."""

    name: str
    verified: bool
    phone: bool = False


@dataclass(frozen=True)
class Keys:
    """The room's key table: each learner's key under the name they send as, and the relays' (the wall)."""

    learners: Mapping[str, str] = field(default_factory=dict)
    relays: Mapping[str, str] = field(default_factory=dict)

    def sender(self, learner: str, header: bytes | str | None, record_key: bytes, value: bytes) -> Sender:
        """The name a record may be shown under: ``learner`` when signed with that learner's own key, ``learner
        (phone)`` when a relay signed it, else no name (``verified`` False)."""
        signer, _, given = (header.decode("latin-1") if isinstance(header, bytes) else header or "").partition(":")
        key = self.learners.get(signer) if signer == learner else self.relays.get(signer)
        if not key or not given or not hmac.compare_digest(given, signature(key, signer, learner, record_key, value)):
            return Sender("", False)
        if signer in self.relays:
            return Sender(f"{learner} (phone)" if learner else "a phone", True, phone=True)
        return Sender(learner, True)


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


__all__ = ["IdentityError", "KEY_BYTES", "Keys", "SIGNATURE_HEADER", "Sender", "new_key", "read_keys",
           "sender_as_written", "signature", "signed_header"]
