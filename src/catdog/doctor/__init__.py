"""The instructor's pre-flight check (`catdog doctor`): after `oc apply`, is the cluster ready for the room?

Each check asks what a learner's first minutes will ask of the cluster, in the order they would fail:
the operator, the Kafka cluster, its topics, the classifier, a photo's round trip and a refused message's
dead letter, the ACLs, every notebook's Route and token, the wall, the image on every node. It reads the
cluster with `oc get -o json` (or kubectl) and talks to Kafka and the Routes as a learner would, with the
lab's own settings (KAFKA_* as in the README's "Send photos from a laptop"). One line per check, a
verdict, exit status 1 if any check failed.

Its parts: ``cluster`` (asking the cluster and the Routes), ``streams`` (Kafka's checks), ``services``
(the classifier's, the notebooks', the wall's) and ``report`` (running them, the verdict).
"""
