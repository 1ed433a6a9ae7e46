"""What a wall card shows, taken field by field from a classifier's result: nothing else a sender wrote
passes, and every text is cut to printable characters of a bounded length."""

from __future__ import annotations

from catdog.config import MAX_LEARNER_CHARS
from catdog.labels import label_value

MODELS = ("quick", "pretrained")
VERSIONS_SHOWN = 6  # per model: the versions whose accuracy the wall shows, oldest dropped first
MAX_VERSION_CHARS = 16  # a version is 12 hex digits; anything longer is not ours
MAX_FILENAME_CHARS = 200


def clean_text(value: str, limit: int) -> str:
    """Printable characters only, at most ``limit``: what a sender may name a photo or themselves."""
    return "".join(ch for ch in value if ch.isprintable())[:limit].strip()


def source_of(result: dict) -> tuple[str, int, int] | None:
    """Where a result's photo is (topic, partition, offset), or None when the result does not say."""
    source = result.get("source") or {}
    topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
    if not isinstance(topic, str) or type(partition) is not int or type(offset) is not int:
        return None
    return topic, partition, offset


def card(result: dict, thumb: str | None) -> dict:
    """What a wall card shows, taken field by field from a result (nothing else a sender wrote passes)."""
    topic, partition, offset = source_of(result)
    shown = {
        "id": f"{partition}-{offset}",
        "partition": partition,
        "offset": offset,
        "key": str(result.get("key") or ""),
        "filename": clean_text(str(result.get("filename") or ""), MAX_FILENAME_CHARS),
        "learner": clean_text(str(result.get("learner") or ""), MAX_LEARNER_CHARS),
        "agree": bool(result.get("agree")),
        "classified_at": str(result.get("classified_at") or ""),
        "thumb": thumb,
    }
    for model in MODELS:
        verdict = result[model]
        shown[model] = {
            "label": verdict["label"],
            "p_dog": float(verdict["p_dog"]),
            "version": str(verdict.get("version") or ""),
        }
    return shown


def feedback_value(result: dict, label: str, learner: str, phone: str) -> dict:
    """The label a right/wrong button writes: the phone that pressed it (the wall issued its cookie: one vote
    per phone), with the verdicts it judged and the models that gave them."""
    return label_value(
        label,
        learner,
        "wall",
        result["source"],
        phone=phone,
        verdicts={model: result[model]["label"] for model in MODELS},
        versions={model: result[model].get("version") for model in MODELS},
    )
