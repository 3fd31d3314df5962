"""Connecting to the API server: in the cluster with the ServiceAccount, elsewhere with $KUBECONFIG; and
`KubeCalls`, the one way the operator's own code calls it.

`kubernetes.config` reads $KUBECONFIG once, at import; reading it here at call time lets a process
(or a test) point the operator at a cluster after the client library was imported.

The kubernetes client blocks, so its calls run on a thread pool of their own (bounded: a slow API server
cannot grow threads without limit, and it does not starve asyncio's default pool that other code uses),
each with a request timeout: a call that hangs fails after that time instead of holding a run's step.
The runs' Lease calls have a small pool of their own (`call_urgent`): a renewal keeps a run driven, and with
hundreds of runs it must not queue behind their status writes until the Lease's deadline has passed.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

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


T = TypeVar("T")

# (connect, read) seconds for every call of the operator's own: a status write, a Lease, a Secret.
REQUEST_TIMEOUT = (5.0, 20.0)
KUBE_WORKERS = 8
URGENT_WORKERS = 4


def api_client(configuration: Configuration) -> ApiClient:
    # One connection per thread of both pools, so that no call waits for a connection (or opens a throwaway one).
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, KUBE_WORKERS + URGENT_WORKERS)
    return ApiClient(configuration)


class KubeCalls:
    """Blocking kubernetes-client calls on a bounded pool of their own, each with `_request_timeout`."""

    def __init__(self, api: ApiClient, *, workers: int = KUBE_WORKERS) -> None:
        self.api = api
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self._urgent = ThreadPoolExecutor(max_workers=URGENT_WORKERS, thread_name_prefix="kube-urgent")

    async def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._on(self._pool, method, *args, **kwargs)

    async def call_urgent(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A call that must not wait behind the others (a run's Lease): on the small pool of its own."""
        return await self._on(self._urgent, method, *args, **kwargs)

    async def _on(self, pool: ThreadPoolExecutor, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(method, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop the pools (waiting for calls in flight), leaving the ApiClient open."""
        self._pool.shutdown(wait=True)
        self._urgent.shutdown(wait=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._urgent.shutdown(wait=False, cancel_futures=True)
        self.api.close()  # type: ignore[no-untyped-call]


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
