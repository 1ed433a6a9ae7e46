"""A workshop room: one Kafka and one classifier for many learners, each in a namespace of their own.

``catdog room`` writes a folder (``folder``) that ``oc apply -k`` installs. It holds what must be generated rather
than kept in git: the room's Kafka cluster CA (Strimzi uses it instead of its own, so every learner's
namespace can trust it without reading the room's), and for each learner a JupyterLab token, a SCRAM
password (the same Secret in the room's namespace, where the KafkaUser reads it, and in the learner's,
where the notebook reads it), the KafkaUser with exactly the ACLs the notebooks and the challenge need,
and the right to pull the room's one image. The manifests themselves stay in deploy/openshift/room (kustomize bases the
folder points at), so `oc apply -k deploy/openshift` still installs a single learner's lab.

The secrets are kept in the folder's ``secrets.json``: running the command again (to add learners) keeps
every token and password already handed out. The folder carries a ``.gitignore`` of ``*``.

Its parts: ``learners`` (names), ``certificates`` (the CA), ``manifests`` (the KafkaUsers, Secrets and
kustomizations), ``workbenches`` (OpenShift AI's) and ``folder`` (writing it all, and the saved secrets).
"""
