"""The Prometheus Operator's CRDs that the chart's monitoring objects need (ServiceMonitor, PrometheusRule).

No registry or release download is reachable here, but the Go module proxy serves the
prometheus-operator module, whose `example/prometheus-operator-crd/` folder holds the CRDs as YAML.
Used by scripts/e2e and the chart's tests, which install them into a test cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

MODULE = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
FILES = ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")
NAMES = ("servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com")


def paths() -> list[Path]:
    """The CRD files, from the module cache (downloaded once)."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", MODULE],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod"),
        cwd="/",
    )
    if proc.returncode != 0:
        raise RuntimeError(f"go mod download {MODULE} failed:\n{proc.stdout}{proc.stderr}")
    folder = Path(json.loads(proc.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
    return [folder / name for name in FILES]
