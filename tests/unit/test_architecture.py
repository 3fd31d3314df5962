"""One direction of imports: the domain knows nothing of Kubernetes, HTTP, exchanges or the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_DOMAIN = (
    "kubernetes",
    "kopf",
    "ccxt",
    "aiohttp",
    "requests",
    "traiding_adapters",
    "traiding_simulator",
    "traiding_operator",
    "traiding.pipeline",
    "traiding.telemetry",
    "prometheus_client",
    "asyncio",
)
# The bundled candles: files and a lookup beside the domain, read by the simulator and the command line alike.
FORBIDDEN_IN_DATA = (*FORBIDDEN_IN_DOMAIN, "traiding.backtest_cli", "traiding.run_cli")
# The adapters report metrics through their ExchangeObserver protocol, never into a metrics library.
FORBIDDEN_IN_ADAPTERS = (
    "traiding.pipeline",
    "traiding.telemetry",
    "traiding_operator",
    "traiding_simulator",
    "kubernetes",
    "kopf",
    "prometheus_client",
)
FORBIDDEN_IN_SIMULATOR = ("traiding_adapters", "traiding.pipeline", "traiding_operator", "kubernetes", "kopf")
# Telemetry sits beside the domain: it knows the metrics and logging libraries, never the layers above it.
FORBIDDEN_IN_TELEMETRY = (
    "traiding_adapters",
    "traiding_simulator",
    "traiding_operator",
    "traiding.pipeline",
    "kubernetes",
    "kopf",
    "ccxt",
    "aiohttp",
)
# The pipeline reports into telemetry through event sinks and the hub's observer, wired by the drivers.
FORBIDDEN_IN_PIPELINE = ("traiding_operator", "kubernetes", "kopf", "prometheus_client", "traiding.telemetry")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_forbidden(module: str, forbidden: tuple[str, ...]) -> bool:
    return any(module == f or module.startswith(f + ".") for f in forbidden)


def violations(folder: Path, forbidden: tuple[str, ...], root: Path = REPO) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for module in sorted(imported_modules(path)):
            if is_forbidden(module, forbidden):
                found.append(f"{path.relative_to(root)} imports {module}")
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("traiding/domain", FORBIDDEN_IN_DOMAIN),
        ("traiding/data", FORBIDDEN_IN_DATA),
        ("adapters/traiding_adapters", FORBIDDEN_IN_ADAPTERS),
        ("simulator/traiding_simulator", FORBIDDEN_IN_SIMULATOR),
        ("traiding/telemetry", FORBIDDEN_IN_TELEMETRY),
        ("traiding/pipeline", FORBIDDEN_IN_PIPELINE),
    ],
)
def test_imports_point_one_way(folder: str, forbidden: tuple[str, ...]) -> None:
    assert (REPO / folder).is_dir()
    assert violations(REPO / folder, forbidden) == []


def test_what_a_worker_process_computes_imports_only_the_domain_and_the_resource_model() -> None:
    # traiding.pipeline.compute runs in the operator's worker processes: spawned without ccxt, kopf or asyncio.
    imported = imported_modules(REPO / "traiding" / "pipeline" / "compute.py")
    ours = sorted(m for m in imported if m.startswith("traiding"))
    assert ours and all(m.startswith("traiding.domain") or m == "traiding.resource" for m in ours), ours
    assert not [m for m in imported if m.split(".")[0] in ("asyncio", *FORBIDDEN_IN_DOMAIN)]


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import kubernetes.client\nfrom ccxt import binance\nimport numpy\n")
    assert violations(tmp_path, FORBIDDEN_IN_DOMAIN, root=tmp_path) == [
        "bad.py imports ccxt",
        "bad.py imports kubernetes.client",
    ]


def test_only_telemetry_imports_prometheus_client() -> None:
    importers = [
        str(path.relative_to(REPO))
        for folder in ("traiding", "adapters", "operator", "simulator")
        for path in sorted((REPO / folder).rglob("*.py"))
        if any(m == "prometheus_client" or m.startswith("prometheus_client.") for m in imported_modules(path))
    ]
    assert importers and all(path.startswith("traiding/telemetry/") for path in importers), importers


def test_no_package_shadows_the_standard_library_operator_module() -> None:
    assert not (REPO / "operator" / "__init__.py").exists()


# Beside the domain, read by both drivers: where runs may connect (settings) and the keys at rest (Fernet). They
# know their libraries (pydantic-settings, cryptography), never Kubernetes, an exchange or the layers above.
FORBIDDEN_BESIDE_THE_DOMAIN = tuple(f for f in FORBIDDEN_IN_DOMAIN if f != "asyncio")


@pytest.mark.parametrize("module", ["traiding/settings.py", "traiding/key_encryption.py"])
def test_the_settings_and_the_key_encryption_import_no_layer_above_them(module: str) -> None:
    imported = imported_modules(REPO / module)
    assert imported and not [m for m in imported if is_forbidden(m, FORBIDDEN_BESIDE_THE_DOMAIN)]
