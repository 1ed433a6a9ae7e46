"""Who sent a record is what their key signs, not what they write: a learner's own key names them, another
learner's key, a changed byte or another record's signature names no one, and the wall's key speaks for
phones, never for a learner. (Against the real broker and classifier: tests/test_retrain.py's poisoned room.)"""

from __future__ import annotations

import json

import pytest

from catdog.identity import IdentityError, Keys, new_key, read_keys, signed_header

ADA, EVE, WALL = new_key(), new_key(), new_key()
KEYS = Keys(learners={"Ada": ADA, "Eve": EVE}, relays={"catdog-wall": WALL})
PHOTO, KEY = b"\xff\xd8 a photo's bytes", b"sha256-of-the-photo"


def signed(signer: str, key: str, learner: str, record_key: bytes = KEY, value: bytes = PHOTO) -> bytes:
    return signed_header(signer, key, learner, record_key, value)[1]


def test_a_learner_is_named_only_under_their_own_key():
    assert KEYS.sender("Ada", signed("Ada", ADA, "Ada"), KEY, PHOTO).name == "Ada"
    assert KEYS.sender("Ada", signed("Ada", ADA, "Ada"), KEY, PHOTO).verified
    forged = [
        KEYS.sender("Ada", signed("Eve", EVE, "Ada"), KEY, PHOTO),  # Eve's key, Ada's name
        KEYS.sender("Ada", signed("Ada", EVE, "Ada"), KEY, PHOTO),  # claims to be Ada's signature, Eve's key
        KEYS.sender("Ada", None, KEY, PHOTO),  # no signature at all
        KEYS.sender("Ada", b"Ada:" + b"0" * 64, KEY, PHOTO),  # a made-up one
        KEYS.sender("Ada", signed("Ada", ADA, "Ada"), KEY, PHOTO + b"!"),  # Ada's, on other bytes
        KEYS.sender("Ada", signed("Ada", ADA, "Ada", record_key=b"other"), KEY, PHOTO),  # another record's
        KEYS.sender("Bob", signed("Bob", new_key(), "Bob"), KEY, PHOTO),  # a name the room never issued
    ]
    assert all(sender.name == "" and not sender.verified for sender in forged), forged


def test_the_wall_speaks_for_phones_and_never_as_a_learner():
    phone = KEYS.sender("Ada", signed("catdog-wall", WALL, "Ada"), KEY, PHOTO)
    assert phone.verified and phone.phone and phone.name == "Ada (phone)"
    assert KEYS.sender("", signed("catdog-wall", WALL, ""), KEY, PHOTO).name == "a phone"
    assert not KEYS.sender("Ada", signed("catdog-wall", ADA, "Ada"), KEY, PHOTO).verified  # not the wall's key
    assert not KEYS.sender("Ada", signed("Eve", EVE, "Ada"), KEY, PHOTO).phone  # a learner is no relay


def test_the_key_table_is_read_from_its_file_or_refused_with_the_setting(tmp_path):
    table = tmp_path / "keys.json"
    table.write_text(json.dumps({"learners": {"Ada": ADA}, "relays": {"catdog-wall": WALL}}))
    assert read_keys(table) == Keys({"Ada": ADA}, {"catdog-wall": WALL}) and read_keys(None) is None
    table.write_text(json.dumps({"learners": {"Ada": "not hex"}}))
    with pytest.raises(IdentityError, match=f"CATDOG_LEARNER_KEYS={table}"):
        read_keys(table)


def test_a_signed_record_is_unique_and_ordered_so_a_copy_a_reordering_or_the_future_is_refused():
    """Every signature carries its time and a nonce: a copy read elsewhere, one older than the signer's latest
    for the same subject, or one signed far ahead of the reader's clock does not count; the same record read
    again where it was (a reader starting over) does."""
    from catdog.identity import MAX_AHEAD_MS, Replays

    now = 1_800_000_000_000
    first = KEYS.sender("Ada", signed_header("Ada", ADA, "Ada", KEY, PHOTO, signed_at=now)[1], KEY, PHOTO)
    later = KEYS.sender("Ada", signed_header("Ada", ADA, "Ada", KEY, PHOTO, signed_at=now + 5)[1], KEY, PHOTO)
    assert first.signed_at == now and first.nonce != later.nonce
    tampered = signed_header("Ada", ADA, "Ada", KEY, PHOTO, signed_at=now)[1].replace(
        str(now).encode(), str(now + 9).encode()
    )
    assert not KEYS.sender("Ada", tampered, KEY, PHOTO).verified  # the time is signed too
    replays = Replays()
    assert replays.problem(first, ("votes", 0, 1), subject="photo/Ada", now_ms=now) is None
    assert replays.problem(first, ("votes", 0, 1), subject="photo/Ada", now_ms=now) is None  # read again in place
    assert (
        replays.problem(first, ("votes", 0, 9), subject="photo/Ada", now_ms=now)
        == "replay: a copy of a record Ada signed, first read at votes[0]@1"
    )
    assert replays.problem(later, ("votes", 0, 2), subject="photo/Ada", now_ms=now) is None
    older = KEYS.sender("Ada", signed_header("Ada", ADA, "Ada", KEY, PHOTO, signed_at=now - 1)[1], KEY, PHOTO)
    assert replays.problem(older, ("votes", 0, 3), subject="photo/Ada", now_ms=now).startswith(
        "replay: older than the latest record Ada signed for it"
    )
    ahead = KEYS.sender(
        "Ada", signed_header("Ada", ADA, "Ada", KEY, PHOTO, signed_at=now + MAX_AHEAD_MS + 1000)[1], KEY, PHOTO
    )
    assert replays.problem(ahead, ("votes", 0, 4), now_ms=now).startswith("from the future: signed by Ada 121 s ahead")
