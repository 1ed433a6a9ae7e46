"""The classifier service: images topic in, one JSON result per image out, bad messages to the DLQ.

Delivery is at-least-once: a batch's offsets are committed only after every result and dead letter of
that batch has been acknowledged by the broker. After a crash the uncommitted batch is read again, so a
result may be published twice; its key and source offset identify the duplicate.

Its parts: ``pipeline`` (a batch polled, decoded, classified, published), ``outputs`` (the result and
dead-letter records), ``group`` (commits and rebalances), ``watcher`` (hot swaps of the models) and
``classifier`` (the loop, and ``catdog classify``).
"""

from catdog.threads import start_tensorflow

# Before any part imports TensorFlow: its thread pools sized to this container's CPUs.
start_tensorflow()
