"""`traiding crd`: print the generated CustomResourceDefinition (or write it to a file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from traiding.crd import render_crd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")


def run(args: argparse.Namespace) -> int:
    text = render_crd()
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text)
    return 0
