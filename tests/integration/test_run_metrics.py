"""`traiding run --metrics-port N` serves the same metrics as the operator while the run runs."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
from pathlib import Path

from tests.integration.test_traiding_run import simulator, write_manifest  # noqa: F401 - the fixture
from tests.prometheus_server import free_port, http_get
from traiding_simulator import ThreadedSimulator

TRAIDING = Path(sys.executable).parent / "traiding"


def test_a_local_run_exposes_its_metrics_while_it_trades(tmp_path: Path, simulator: ThreadedSimulator) -> None:  # noqa: F811
    manifest = write_manifest(tmp_path, **{"session.duration": "1d"})
    port = free_port()
    command = [str(TRAIDING), "run", str(manifest), "-o", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    process = subprocess.Popen([*command, "-q", "--metrics-port", str(port)], stderr=subprocess.PIPE)
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    try:
        while process.poll() is None and time.monotonic() < deadline:
            try:
                body = http_get(f"http://127.0.0.1:{port}/metrics", timeout=2).decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
                continue
            if 'traiding_runs{mode="dry-run",phase="Trading",trigger="manual"} 1.0' in body:
                seen.add("trading")
                if 'traiding_run_pnl{currency="USDT",mode="dry-run",run="eth-sma-dry",run_namespace=""}' in body:
                    seen.add("pnl")
                if 'traiding_order_latency_seconds_count{exchange="binance",mode="dry-run",stage="fill"}' in body:
                    seen.add("fills")
            assert 'traiding_build_info{component="run"' in body
            time.sleep(0.3)
        assert process.wait(60) == 0, process.stderr.read().decode() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
    assert seen == {"trading", "pnl", "fills"}
