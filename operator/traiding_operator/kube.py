"""Connecting to the API server: in the cluster with the ServiceAccount, elsewhere with $KUBECONFIG.

`kubernetes.config` reads $KUBECONFIG once, at import; reading it here at call time lets a process
(or a test) point the operator at a cluster after the client library was imported.
"""

from __future__ import annotations

import os

import kopf
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration


def client_configuration() -> Configuration:
    configuration = Configuration()
    try:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
        kube_config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def api_client(configuration: Configuration) -> ApiClient:
    return ApiClient(configuration)


def connection_info(configuration: Configuration, *, trust_env: bool) -> kopf.ConnectionInfo:
    """kopf's view of the same connection (as `kopf.login_via_client` builds it from the default configuration)."""
    header: str | None = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        trust_env=trust_env,
    )
