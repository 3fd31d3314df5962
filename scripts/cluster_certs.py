"""Certificates and kubeconfigs for the local test control plane.

Lays out what controller-runtime's envtest generates for its kube-apiserver,
plus client certificates for the other components:

* ``ca.crt``/``ca.key``: one self-signed CA. It signs the serving certificate
  and every client certificate, and it is the ``--client-ca-file`` and the
  controller-manager's ``--root-ca-file``/cluster-signing CA.
* ``apiserver.crt``/``.key``: serving certificate for 127.0.0.1, ::1 and
  localhost (plus the in-cluster service names).
* ``sa.key``/``sa.pub``: RSA key pair that signs and verifies service-account
  tokens (``--service-account-signing-key-file``, ``--service-account-key-file``,
  controller-manager ``--service-account-private-key-file``).
* client certificates ``<name>.crt``/``.key`` for ``admin``
  (O=system:masters), ``kube-controller-manager``
  (CN=system:kube-controller-manager), ``kube-scheduler``
  (CN=system:kube-scheduler) and ``kwok`` (O=system:masters).
* ``front-proxy-ca.crt`` and ``front-proxy-client.crt``/``.key`` for the
  aggregation layer (``--requestheader-client-ca-file``, ``--proxy-client-*``).

Only the ``cryptography`` package is needed. Usable as a module
(:func:`generate`, :func:`write_kubeconfig`) and as a script::

    python3 scripts/cluster_certs.py DIR
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import sys
from pathlib import Path

from cluster_node import NODE_IP, NODE_NAME
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Client identities: file stem -> (common name, organisations).
CLIENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("system:masters",)),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kwok": ("kwok-controller", ("system:masters",)),
    # The real node (`scripts/cluster up --real-node`): each component with the identity its default RBAC
    # (or the Node authorizer) grants, and the client kube-apiserver uses for logs and exec on the kubelet.
    "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
    "kube-proxy": ("system:kube-proxy", ()),
    "coredns": ("ai-traiding:coredns", ()),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
}

FRONT_PROXY_CLIENT = "front-proxy-client"

SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", "::1", "10.0.0.1", NODE_IP)

_VALIDITY = datetime.timedelta(days=365)
_BACKDATE = datetime.timedelta(hours=1)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, key: PrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[PrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(subject, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _new_ca(common_name: str) -> tuple[PrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def generate(directory: Path) -> None:
    """Write CA, serving cert, service-account keys and client certs into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)

    ca_key, ca_cert = _new_ca("ai-traiding-test-ca")
    _write(directory / "ca.key", _key_pem(ca_key), private=True)
    _write(directory / "ca.crt", _cert_pem(ca_cert))

    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVING_DNS]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
    key, cert = _issue(ca_key, ca_cert, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    _write(directory / "apiserver.key", _key_pem(key), private=True)
    _write(directory / "apiserver.crt", _cert_pem(cert))

    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(directory / "sa.key", _key_pem(sa_key), private=True)
    _write(
        directory / "sa.pub",
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )

    for stem, (common_name, orgs) in CLIENTS.items():
        key, cert = _issue(ca_key, ca_cert, _name(common_name, orgs), ExtendedKeyUsageOID.CLIENT_AUTH)
        _write(directory / f"{stem}.key", _key_pem(key), private=True)
        _write(directory / f"{stem}.crt", _cert_pem(cert))

    # Front proxy (aggregation layer): its own CA, and the client cert kube-apiserver presents to
    # aggregated API servers; the other components read the CA from extension-apiserver-authentication.
    proxy_ca_key, proxy_ca_cert = _new_ca("ai-traiding-front-proxy-ca")
    _write(directory / "front-proxy-ca.key", _key_pem(proxy_ca_key), private=True)
    _write(directory / "front-proxy-ca.crt", _cert_pem(proxy_ca_cert))
    key, cert = _issue(proxy_ca_key, proxy_ca_cert, _name(FRONT_PROXY_CLIENT), ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(directory / "front-proxy-client.key", _key_pem(key), private=True)
    _write(directory / "front-proxy-client.crt", _cert_pem(cert))


def write_kubeconfig(path: Path, server: str, cert_dir: Path, user: str, context: str = "ai-traiding") -> None:
    """Write a kubeconfig for client ``user`` (a stem of :data:`CLIENTS`).

    JSON is valid YAML, so no YAML library is needed.
    """
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": server,
                    "certificate-authority": str(cert_dir / "ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(cert_dir / f"{user}.crt"),
                    "client-key": str(cert_dir / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR", file=sys.stderr)
        return 2
    generate(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
