"""`traiding slo render [--config FILE] [--spec-only]`: the SLOs' PrometheusRule as YAML.

The Helm chart ships `helm/ai-traiding/files/prometheusrule-spec.yaml`, which is exactly
`traiding slo render --spec-only` (a test checks); the `spec` is also a plain Prometheus rule file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from traiding.telemetry.rules import prometheus_rule, to_yaml
from traiding.telemetry.slo import load_slo_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="slo_action", metavar="ACTION", required=True)
    render = actions.add_parser("render", help="print the PrometheusRule (recording rules and alerts) for the SLOs")
    render.add_argument("--config", type=Path, help="SLO configuration (YAML); default: the four default SLOs")
    render.add_argument(
        "--spec-only", action="store_true", help="print only the rule groups (the PrometheusRule's spec)"
    )


def run(args: argparse.Namespace) -> int:
    rule = prometheus_rule(load_slo_config(args.config))
    sys.stdout.write(to_yaml(rule["spec"] if args.spec_only else rule))
    return 0
