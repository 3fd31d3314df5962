"""A real Prometheus (the Debian package's binary) on loopback for tests: its own config and data folder,
the shipped rules loaded, stopped afterwards. Reusable by any test that has targets to scrape."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import yaml

from tests.observability_tools import RULES_FILE, tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return cast(bytes, response.read())


def wait_for_url(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        try:
            http_get(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class PrometheusServer:
    """`prometheus` scraping `targets` every second under `job`, evaluating `rule_files` every second."""

    def __init__(
        self,
        folder: Path,
        job: str,
        targets: Sequence[str],
        rule_files: Sequence[Path] = (RULES_FILE,),
        interval: str = "1s",
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": interval, "evaluation_interval": interval},
                    "rule_files": [str(path) for path in rule_files],
                    "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
                }
            )
        )
        self.log = folder / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_url(f"{self.url}/-/ready", 60, self.process)
        except (TimeoutError, RuntimeError) as error:
            self.stop()
            raise RuntimeError(f"{error}; its log:\n{self.log.read_text()}") from None
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            body = json.loads(http_get(url))
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: HTTP {error.code}: {error.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query_range(self, expr: str, start: float, end: float, step: str = "2s") -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)
        return cast(list[dict[str, Any]], data["result"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.api("query", query=expr)["result"])

    def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        return cast(
            list[dict[str, str]], self.api("series", **{"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"})
        )

    def targets_up(self) -> bool:
        active = self.api("targets")["activeTargets"]
        return bool(active) and all(target["health"] == "up" for target in active)
