"""Kafka clients built from the settings: producers, consumers, the admin client that makes the topics,
and readers positioned for one question; a broker that will not let us in is explained in one line.
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from catdog import CatdogError
from catdog.config import KafkaSettings
from catdog.kafka.records import Sent

log = logging.getLogger(__name__)


# Inference on a bounded batch takes seconds; this leaves ample room before the group evicts us.
MAX_POLL_INTERVAL_MS = 300_000


# How long a new client tries to reach a bootstrap server before saying it cannot.
BOOTSTRAP_TIMEOUT_MS = 10_000


class KafkaUnavailable(CatdogError):
    """No broker answers at the configured bootstrap address."""


RECONNECT_BACKOFF_MAX_MS = 2_000


def client_config(kafka: KafkaSettings) -> dict:
    """Connection settings common to producers, consumers and the admin client."""
    config: dict = {
        "bootstrap_servers": kafka.bootstrap_servers.split(","),
        "security_protocol": kafka.security_protocol,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        # kafka-python backs off up to 30 s between tries to reach a broker that went away: after a 15 s
        # restart of the room's Kafka the classifier and the wall waited ~11 s more (tests/test_restarts.py).
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
    }
    for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(kafka, option) is not None:
            config[option] = str(getattr(kafka, option))
    if kafka.sasl_mechanism:
        config.update(
            sasl_mechanism=kafka.sasl_mechanism,
            sasl_plain_username=kafka.sasl_username,
            sasl_plain_password=kafka.sasl_password,
        )
    return config


def _unavailable(kafka: KafkaSettings, error: Exception) -> KafkaUnavailable:
    said = diagnose(kafka)
    if said:
        return KafkaUnavailable(f"cannot use Kafka at {kafka.bootstrap_servers}: {said}")
    if is_local(kafka.bootstrap_servers) and not kafka.learner_key:
        return KafkaUnavailable(
            f"cannot reach Kafka at {kafka.bootstrap_servers} ({error}); start the local broker with "
            "`catdog broker start`, or set KAFKA_BOOTSTRAP_SERVERS"
        )
    # A room's Kafka: restarting (a drained node, an update) or away; nothing for the learner to start.
    return KafkaUnavailable(
        f"cannot reach the room's Kafka at {kafka.bootstrap_servers} ({error}): it may be restarting; try again in "
        "a minute, and tell your instructor if it lasts (nothing you sent before was lost)"
    )


def is_local(bootstrap_servers: str) -> bool:
    """Whether every bootstrap address is this machine (the embedded broker's, a laptop's lab)."""
    hosts = [address.rsplit(":", 1)[0].strip("[]") for address in bootstrap_servers.split(",")]
    return all(host in ("localhost", "127.0.0.1", "::1") for host in hosts)


def diagnose(kafka: KafkaSettings, timeout: float = 5.0) -> str | None:
    """Why a broker that listens would not let us in, in one line naming the setting to check; None when
    nothing listens (or nothing better can be said). Kafka clients report a refused TLS handshake or a
    refused login as a connection that keeps failing, so this asks the first bootstrap address directly:
    does it speak TLS, is its certificate signed by our CA, and (with SASL) it must be the login."""
    import socket
    import ssl

    host, _, port = kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError):
        return None
    tls = kafka.security_protocol in ("SSL", "SASL_SSL")
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if not tls:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, int(port)), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            pass
    except ssl.SSLCertVerificationError as error:
        return (
            f"its certificate is not one we trust ({error.verify_message}): check KAFKA_SSL_CAFILE "
            f"({kafka.ssl_cafile or 'unset: the system CAs'}), the room's CA certificate"
        )
    except (ssl.SSLError, OSError):
        return "it does not speak TLS: check KAFKA_SECURITY_PROTOCOL" if tls else None
    if not tls:
        return (
            f"it speaks TLS: set KAFKA_SECURITY_PROTOCOL=SASL_SSL (now {kafka.security_protocol}) and KAFKA_SSL_CAFILE"
        )
    if kafka.sasl_mechanism:
        return (
            f"TLS works but it refused the login as {kafka.sasl_username} ({kafka.sasl_mechanism}): check "
            "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (the KafkaUser's Secret)"
        )
    return None


def make_producer(kafka: KafkaSettings, **overrides) -> KafkaProducer:
    """A producer that waits for the broker's acknowledgement (acks=all) and fits the largest image."""
    try:
        return KafkaProducer(
            **{
                **client_config(kafka),
                "acks": "all",
                "max_request_size": kafka.max_message_bytes,
                "linger_ms": 0,  # one photo is one request: waiting to batch would only add latency
                "retries": 5,
                **overrides,
            }
        )
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None


def make_consumer(kafka: KafkaSettings, *topics: str, group_id: str | None = None, **overrides) -> KafkaConsumer:
    """A consumer that reads from the earliest offset, never auto-commits, and fetches the largest image.

    With ``group_id=None`` it joins no group (reading, e.g. for ``catdog results``, commits nothing).
    """
    config = {
        **client_config(kafka),
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "fetch_max_bytes": max(52428800, kafka.max_message_bytes),
        "max_partition_fetch_bytes": kafka.max_message_bytes,
        # From the settings: Kafka's defaults, the embedded broker's where it runs. The heartbeat runs in
        # a background thread, so slow inference cannot end the session.
        "session_timeout_ms": kafka.session_timeout_ms,
        "heartbeat_interval_ms": kafka.heartbeat_interval_ms,
        "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
        "fetch_max_wait_ms": kafka.fetch_wait_ms,
        **overrides,
    }
    try:
        return KafkaConsumer(*topics, **config)
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None


def ensure_topics(kafka: KafkaSettings, partitions: int = 1) -> list[str]:
    """Create the images, predictions, dead-letter, feedback, moderation, challenge and progress topics if
    missing; returns those created."""
    try:
        admin = KafkaAdminClient(**client_config(kafka))
    except KafkaTimeoutError as error:
        raise _unavailable(kafka, error) from None
    created = []
    sized = {"max.message.bytes": str(kafka.max_message_bytes)}
    wanted = {
        kafka.images_topic: sized,
        kafka.predictions_topic: sized,
        kafka.dlq_topic: sized,
        # the latest verdict per image is what counts: compaction keeps it, drops what it replaced
        kafka.feedback_topic: {"cleanup.policy": "compact"},
        kafka.moderation_topic: {"cleanup.policy": "compact"},
        kafka.challenge_topic: sized,
        kafka.submissions_topic: {},
        kafka.progress_topic: {},
    }
    try:
        existing = set(admin.list_topics())
        for topic, configs in wanted.items():
            if topic in existing:
                continue
            try:  # moderation in one partition: its records apply in the order the instructor made them;
                # the challenge's in one too (a set is read whole, submissions scored in the order sent)
                count = (
                    1
                    if topic
                    in (kafka.moderation_topic, kafka.challenge_topic, kafka.submissions_topic, kafka.progress_topic)
                    else partitions
                )
                admin.create_topics([NewTopic(topic, count, 1, topic_configs=configs)])
                created.append(topic)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return created


def assign_every_partition(consumer: KafkaConsumer, *topics: str) -> list[TopicPartition] | None:
    """Assign ``consumer`` (which joins no group) every partition of ``topics``, in order; None, and
    nothing assigned, while any of them does not exist yet. The one way our readers take a topic whole."""
    found = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    if not all(found.values()):
        return None
    assigned = [TopicPartition(topic, partition) for topic in topics for partition in sorted(found[topic])]
    consumer.assign(assigned)
    return assigned


def seek_last(consumer: KafkaConsumer, partitions: list[TopicPartition], last: int) -> None:
    """Position each partition ``last`` records before its end (at its beginning if it holds fewer)."""
    beginnings, ends = consumer.beginning_offsets(partitions), consumer.end_offsets(partitions)
    for partition in partitions:
        consumer.seek(partition, max(beginnings[partition], ends[partition] - last))


def make_reader(
    kafka: KafkaSettings, topic: str, *, since_ms: int | None = None, sent: Sent | None = None, last: int | None = None
) -> KafkaConsumer:
    """A consumer in no group, on every partition of ``topic``, positioned for one learner's question.

    ``sent``: from that record on (its own partition at its offset, the others from its timestamp);
    ``since_ms``: from the first record at or after that Kafka timestamp; ``last``: the last ``last``
    records of each partition; none of them: from the beginning. Joining no group, it never waits on
    (or becomes) a stale group member, and commits nothing.
    """
    consumer = make_consumer(kafka)
    try:
        assigned = assign_every_partition(consumer, topic)
        if not assigned:
            raise CatdogError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
        if sent is not None:
            since_ms = sent.timestamp
        if since_ms is not None:
            # The ends are read *before* the time lookup, and a partition with nothing that recent yet is
            # positioned there: a record written between the lookup and the first fetch is then read.
            # `seek_to_end` resolves the end only at the first poll, past such a record, and the learner
            # waited the whole timeout for a result that had come (the "stalled" classifier of issue 40).
            ends = consumer.end_offsets(assigned)
            found = consumer.offsets_for_times({partition: since_ms for partition in assigned})
            for partition in assigned:
                match = found.get(partition)
                # The embedded broker answers "none" as offset 0 with timestamp -1, Kafka as None.
                if match is None or match.timestamp < 0:
                    consumer.seek(partition, ends[partition])  # nothing that recent yet: wait for what comes
                else:
                    consumer.seek(partition, match.offset)
        elif last is not None:
            seek_last(consumer, assigned, last)
        else:
            consumer.seek_to_beginning(*assigned)
        if sent is not None:
            consumer.seek(TopicPartition(sent.topic, sent.partition), sent.offset)
    except BaseException:
        consumer.close()
        raise
    return consumer
