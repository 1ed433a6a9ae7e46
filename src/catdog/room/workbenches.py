"""A learner's lab as an OpenShift AI workbench: the Notebook and its volume as the dashboard writes them
(its image, its JupyterLab options, its OAuth proxy), in the learner's data science project."""

from __future__ import annotations

from pathlib import Path

import yaml

from catdog.room.learners import HOME_DIR, WORKBENCH, Learner


def _notebook_container(manifests: Path) -> dict:
    """The notebook container of deploy/openshift/base/notebook: one place for its size and probes' port."""
    deployment = yaml.safe_load((manifests / "base" / "notebook" / "deployment.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _workbench_container(base_url: str, image: str, manifests: Path) -> dict:
    """The workbench's one container: JupyterLab as the dashboard starts it, the room's settings and Secrets."""
    container = _notebook_container(manifests)
    probe = {
        "httpGet": {"path": f"{base_url}/api", "port": "notebook-port", "scheme": "HTTP"},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    args = [
        "--ServerApp.port=8888",
        "--ServerApp.token=''",
        "--ServerApp.password=''",
        f"--ServerApp.base_url={base_url}",
        "--ServerApp.quit_button=False",
    ]
    return {
        "name": WORKBENCH,  # the controller finds the notebook container by the Notebook's name
        "image": image,
        "imagePullPolicy": "Always",
        "workingDir": HOME_DIR,
        "env": [
            {"name": "NOTEBOOK_ARGS", "value": "\n".join(args)},
            {"name": "JUPYTER_IMAGE", "value": image},
            {
                "name": "KAFKA_SASL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "catdog-kafka-user", "key": "password"}},
            },
            {
                "name": "CATDOG_LEARNER_KEY",
                "valueFrom": {"secretKeyRef": {"name": "catdog-kafka-user", "key": "signing-key"}},
            },
        ],
        "envFrom": [{"configMapRef": {"name": "catdog-settings"}}],
        "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
        "resources": container["resources"],
        "livenessProbe": probe,
        "readinessProbe": probe,
        "volumeMounts": [
            {"name": WORKBENCH, "mountPath": HOME_DIR},
            {"name": "kafka-ca", "mountPath": "/etc/catdog/kafka-ca", "readOnly": True},
        ],
    }


def workbench(learner: Learner, dashboard_namespace: str, manifests: Path) -> list[dict]:
    """A learner's workbench as the OpenShift AI dashboard writes one (a kubeflow.org Notebook in the data
    science project, its HOME volume): the dashboard's ImageStream, the dashboard's JupyterLab options
    (base URL /notebook/<project>/<name>, no token: its OAuth proxy guards it), probes on <base URL>/api,
    the room's settings and the learner's Kafka password and CA."""
    base_url = f"/notebook/{learner.namespace}/{WORKBENCH}"
    image = f"image-registry.openshift-image-registry.svc:5000/{dashboard_namespace}/catdog:latest"
    notebook = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "Notebook",
        "metadata": {
            "name": WORKBENCH,
            "labels": {"app": WORKBENCH, "opendatahub.io/dashboard": "true", "opendatahub.io/odh-managed": "true"},
            "annotations": {
                "notebooks.opendatahub.io/inject-oauth": "true",
                "notebooks.opendatahub.io/last-image-selection": "catdog:latest",
                "opendatahub.io/image-display-name": "catdog lab",
                "openshift.io/display-name": f"catdog lab ({learner.name})",
            },
        },
        "spec": {
            "template": {
                "spec": {
                    "enableServiceLinks": False,
                    "containers": [_workbench_container(base_url, image, manifests)],
                    "volumes": [
                        {"name": WORKBENCH, "persistentVolumeClaim": {"claimName": WORKBENCH}},
                        {"name": "kafka-ca", "secret": {"secretName": "catdog-kafka-ca"}},
                    ],
                }
            }
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": WORKBENCH,
            "labels": {"opendatahub.io/dashboard": "true"},
            "annotations": {"openshift.io/display-name": WORKBENCH},
        },
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    return [claim, notebook]
