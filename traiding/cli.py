"""The `traiding` command: a thin dispatcher; each subcommand lives in a module of its own.

Subcommand modules are imported only when chosen, so `traiding backtest` never pays for
kopf or aiohttp start-up.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from traiding import __version__
from traiding.errors import UserError


class _Subcommand(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("traiding.run_cli", "run every phase of a TradingRun manifest locally"),
    "backtest": ("traiding.backtest_cli", "backtest a strategy on a candle file"),
    "simulator": ("traiding_simulator.cli", "serve a Binance-compatible exchange simulator on loopback"),
    "crd": ("traiding.crd_cli", "print the TradingRun CustomResourceDefinition"),
    "operator": ("traiding_operator.cli", "run the Kubernetes operator"),
    "submit": ("traiding_operator.submit_cli", "create a TradingRun in a cluster from a manifest (generateName ok)"),
    "doctor": ("traiding.doctor_cli", "check an installation (libraries, exchange layer, cluster and CRD)"),
    "slo": ("traiding.slo_cli", "render the SLOs' PrometheusRule (recording rules and burn-rate alerts)"),
    "keys": ("traiding.keys_cli", "exchange keys encrypted at rest: generate a key, encrypt or rotate a Secret"),
}


def _load(module_name: str) -> _Subcommand:
    return cast(_Subcommand, importlib.import_module(module_name))


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, _Subcommand | None]:
    parser = argparse.ArgumentParser(prog="traiding", description="Take a trading strategy from idea to trading.")
    parser.add_argument("--version", action="version", version=f"traiding {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    selected: _Subcommand | None = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            selected = _load(module_name)
            selected.add_arguments(sub_parser)
    return parser, selected


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser, selected = build_parser(args_list)
    args = parser.parse_args(args_list)
    if selected is None:
        parser.print_help()
        return 2
    try:
        return selected.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`traiding backtest --json | head`): stop quietly, as other command-line tools do.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe


if __name__ == "__main__":
    raise SystemExit(main())
