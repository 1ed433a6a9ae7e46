"""The consumer group's side: offsets committed only after a batch's results and dead letters were
acknowledged, a commit refused by a rebalance kept for the next turn, and what a rebalance revokes."""

from __future__ import annotations

import logging

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from catdog.metrics import ServiceMetrics

log = logging.getLogger("catdog.service")


# A commit refused because the group moved on (kafka-python raises each of these): not a broken session.
REBALANCED = (CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError)


class Membership(ConsumerRebalanceListener):
    """Whether this member's group has settled, as kafka-python reports it from ``poll()``: revoked when a
    rebalance starts (or the membership is lost), assigned when it ends.

    While it is unsettled the service sends the coordinator nothing of its own. A broker answers a
    connection's requests in order, so an offset fetch queued behind a JoinGroup returns only when the join
    has; kafka-python 3.0.12 then drops that finished join (it completed outside ``poll()``) and joins
    again, which rebalances the whole group again, for as long as the timing repeats (a member looping
    for minutes was seen in ``test_a_member_paused_past_its_session_timeout…``)."""

    def __init__(self) -> None:
        self.settled = False

    def on_partitions_revoked(self, revoked) -> None:
        self.settled = False

    def on_partitions_assigned(self, assigned) -> None:
        self.settled = True


def batch_offsets(positions: list[tuple[str, int, int, int]]) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets that commit a batch: one past its last record of each partition."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic, partition_id, offset, _ in positions:
        partition = TopicPartition(topic, partition_id)
        if partition not in offsets or offsets[partition].offset < offset + 1:
            offsets[partition] = OffsetAndMetadata(offset + 1, "", -1)
    return offsets


class Committer:
    """Offsets in, across rebalances: a batch's offsets are committed once it is published; what the group
    refused while it rebalanced is committed later, for the partitions this member still owns.

    If the group moved its partitions meanwhile (a member joined, or this one was paused past its session
    timeout), the commit is refused: those records go to their new owner, which classifies them again
    (at-least-once), and this member carries on in the new group generation with the same connections
    (tearing them down would rebalance everyone again). A partition this member keeps across the
    rebalance keeps its position (kafka-python), past the refused records: nobody would read them again,
    and the group's offset would lag behind for good (consumer lag that never clears, for KEDA too)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.refused: dict[TopicPartition, OffsetAndMetadata] = {}
        self.membership = Membership()

    def listener(self) -> Membership:
        """A fresh listener for a new subscription (a new session starts unsettled)."""
        self.membership = Membership()
        return self.membership

    def commit(self, consumer: KafkaConsumer, offsets: dict, count: int) -> None:
        """Commit a published batch of ``count`` records (``{}`` and 0: only retry what was refused)."""
        owned = consumer.assignment() if self.membership.settled else set()  # mid-rebalance: retries wait
        retry = self._retry(consumer, owned, offsets)
        if retry is None:
            return
        if not offsets and not retry:
            if owned:
                self.refused.clear()
            return
        try:
            consumer.commit({**retry, **offsets})
        except REBALANCED as error:
            self._refused(offsets, count, error)
            return
        if count:
            log.info("batch of %d committed", count)
        if retry:
            log.info(
                "committed what the rebalance refused: %s",
                ", ".join(f"{tp.topic}[{tp.partition}]@{offset.offset}" for tp, offset in retry.items()),
            )
        if owned:  # a settled group: what it gave to others is theirs
            self.refused.clear()

    def _retry(self, consumer: KafkaConsumer, owned: set, offsets: dict) -> dict | None:
        """Refused offsets to commit now: partitions still owned, never behind what the group has committed
        meanwhile. None while the group is not settled enough to ask (the next turn tries again)."""
        retry = {tp: offset for tp, offset in self.refused.items() if tp in owned and tp not in offsets}
        if not retry:
            return retry
        try:
            return {tp: offset for tp, offset in retry.items() if (consumer.committed(tp) or -1) < offset.offset}
        except REBALANCED:
            return None

    def _refused(self, offsets: dict, count: int, error: Exception) -> None:
        if count:
            self.metrics.rebalanced_batches.inc()
        for tp, offset in offsets.items():
            if tp not in self.refused or self.refused[tp].offset < offset.offset:
                self.refused[tp] = offset
        if count:
            log.warning(
                "batch of %d not committed: the group rebalanced while it was classified (%s); its "
                "partitions' new owners classify those records again",
                count,
                error,
            )
