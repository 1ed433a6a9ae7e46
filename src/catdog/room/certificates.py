"""The room's Kafka cluster CA, made here rather than by Strimzi (every learner's namespace can trust it
without reading the room's), and server certificates it signs (the enforcing broker's in the tests)."""

from __future__ import annotations

import datetime
import secrets

PASSWORD_BYTES = 24
CA_VALID_DAYS = 365  # Strimzi does not renew a CA it did not make: a year covers a season of workshops
CA_KEY_BITS = 4096  # as Strimzi's own cluster CA


def make_ca(common_name: str = "catdog room cluster CA", days: int = CA_VALID_DAYS) -> dict[str, str]:
    """A self-signed CA for the room's Kafka cluster: PEM certificate and key, and the PKCS #12 truststore
    (with its password) that Strimzi keeps beside the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=CA_KEY_BITS)
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "catdog"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    p12_password = secrets.token_urlsafe(PASSWORD_BYTES)
    truststore = pkcs12.serialize_java_truststore(
        [pkcs12.PKCS12Certificate(certificate, b"ca.crt")], serialization.BestAvailableEncryption(p12_password.encode())
    )
    return {
        "crt": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "p12": b64(truststore),
        "p12_password": p12_password,
    }


def server_certificate(ca: dict[str, str], hosts: list[str], days: int = CA_VALID_DAYS) -> tuple[str, str]:
    """A broker certificate for ``hosts`` (DNS names or IP addresses) signed by the room's CA, as Strimzi
    signs its brokers' with it: (PEM certificate, PEM key). For a secured broker outside Strimzi (the
    tests' and `make lab-secure`'s), which clients then trust exactly as they trust the room's Kafka."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    issuer = x509.load_pem_x509_certificate(ca["crt"].encode())
    ca_key = serialization.load_pem_private_key(ca["key"].encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())

    def name(host: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            return x509.DNSName(host)

    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([name(host) for host in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        certificate.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
