"""How the doctor asks: the cluster through `oc get -o json` (or kubectl), the Routes over HTTPS as a browser
would (optionally to another address than DNS gives), and what each check answers; the names of the room's
objects on the cluster."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from catdog import CatdogError

OPERATOR_SUBSCRIPTION = "amq-streams"  # deploy/openshift/operator
OPERATOR_NAMESPACE = "openshift-operators"
CLASSIFIER = "catdog-classifier"
NOTEBOOK = "catdog-notebook"
NOTEBOOK_CONTAINER = "notebook"
TOKEN_SECRET = "catdog-notebook-token"
WALL = "catdog-wall"
CHALLENGE_SECRET = "catdog-challenge"  # `catdog challenge make` writes it; the wall mounts it optionally
PREPULLER = "catdog-image-prepuller"
OC_TIMEOUT_S = 30
HTTP_TIMEOUT_S = 15


class OcError(CatdogError):
    """`oc` failed for another reason than "not found" (not logged in, no such resource kind, no rights)."""


@dataclass
class Check:
    name: str
    status: str  # "ok", "FAIL" or "skip"
    detail: str


@dataclass
class Cluster:
    """`oc get … -o json` in one namespace; None for what is not there."""

    oc: str
    namespace: str | None = None
    calls: list[list[str]] = field(default_factory=list)

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        command = [self.oc, *args]
        self.calls.append(command)
        return subprocess.run(command, input=input, capture_output=True, timeout=OC_TIMEOUT_S)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict | None:
        namespace = namespace or self.namespace
        args = ["get", kind, *([name] if name else []), *(["-n", namespace] if namespace else []), "-o", "json"]
        result = self.run(*args)
        if result.returncode != 0:
            error = result.stderr.decode(errors="replace").strip()
            if "NotFound" in error or "not found" in error:
                return None
            raise OcError(f"oc {' '.join(args)}: {error or f'exit status {result.returncode}'}")
        found = json.loads(result.stdout)
        if name is None and not found.get("items"):
            return None
        return found


def find_oc(given: str | None = None) -> str:
    """`--oc`, else oc, else kubectl (the same `get -o json` output) from PATH."""
    for candidate in [given] if given else ["oc", "kubectl"]:
        found = shutil.which(candidate)
        if found:
            return found
    raise OcError(f"{given or 'oc'} not found on PATH: install the OpenShift CLI and `oc login`, or give --oc")


def condition(obj: dict, kind: str = "Ready") -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c.get("type") == kind), None)


def is_ready(obj: dict) -> bool:
    found = condition(obj)
    return bool(found) and found.get("status") == "True"


def not_ready_reason(obj: dict) -> str:
    found = condition(obj)
    if not found:
        return "no Ready condition yet (the operator has not reconciled it)"
    return f"{found.get('reason', 'NotReady')}: {found.get('message', '')}".strip(": ")


@dataclass
class Http:
    """GETs as a browser on the venue's network makes them, with ``connect_to`` as curl's --connect-to
    (host, port) -> (address, port): the router's address before the apps domain's DNS answers."""

    ca_file: Path | None = None
    connect_to: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)

    def status(self, url: str) -> int:
        return self.request("GET", url)[0]

    def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request, through ``connect_to``, TLS checked against ``ca_file``."""
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        address = next(
            (self.connect_to[key] for key in ((host, port), (host, 0), ("", port), ("", 0)) if key in self.connect_to),
            (host, port),
        )
        sock = socket.create_connection(address, timeout=HTTP_TIMEOUT_S)
        if secure:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            sock = context.wrap_socket(sock, server_hostname=host)
        connection = (http.client.HTTPSConnection if secure else http.client.HTTPConnection)(
            host, port, timeout=HTTP_TIMEOUT_S
        )
        connection.sock = sock
        try:
            connection.request(
                method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers or {}
            )
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def route_url(route: dict) -> str:
    scheme = "https" if (route.get("spec") or {}).get("tls") else "http"
    return f"{scheme}://{route['spec']['host']}"


def parse_connect_to(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """curl's --connect-to HOST1:PORT1:HOST2:PORT2 (HOST1 or PORT1 empty: any)."""
    parts = text.split(":")
    if len(parts) != 4 or not parts[2] or not parts[3].isdigit() or (parts[1] and not parts[1].isdigit()):
        raise ValueError(f"--connect-to {text!r}: want HOST1:PORT1:HOST2:PORT2, e.g. ::10.0.0.5:443")
    return (parts[0], int(parts[1] or 0)), (parts[2], int(parts[3]))
