"""The shell commands the README and docs/ show, extracted from their ```sh blocks, for the tests that try them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
BLOCK = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class DocCommand:
    document: str
    block: int  # which ```sh block of the document (each is a sequence of its own)
    line: str  # the command as written (continuations joined, the trailing comment removed)
    raw: str  # the line as the shell gets it (continuations joined)
    argv: tuple[str, ...]  # the first command of a pipeline, with environment assignments dropped

    @property
    def where(self) -> str:
        return f"{self.document}: {self.line}"


SEPARATORS = ("|", "&&", ";", ">", ">>", "<")  # a pipeline, a list, a redirection: the first command


def _first_command(raw: str, tokens: list[str]) -> tuple[str, ...]:
    words = list(tokens)
    if words and words[0] in ("export", "eval"):
        # `export "$(scripts/cluster up | tail -1)"`: the command inside the substitution is the one shown.
        inner = re.search(r"\$\(([^|)]*)", raw)
        return tuple(shlex.split(inner.group(1))) if inner else ()
    for separator in SEPARATORS:
        if separator in words:
            words = words[: words.index(separator)]
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]
    return tuple(words)


def shell_line(tokens: list[str]) -> str:
    return " ".join(t if t in SEPARATORS else shlex.quote(t) for t in tokens)


def doc_commands() -> list[DocCommand]:
    found = []
    for document in DOCUMENTS:
        for number, block in enumerate(BLOCK.findall(document.read_text())):
            for raw in block.replace("\\\n", " ").splitlines():
                if not raw.strip() or raw.lstrip().startswith("#"):
                    continue
                tokens = shlex.split(raw, comments=True)
                line = shell_line(tokens)
                argv = _first_command(raw, tokens)
                if argv:
                    found.append(DocCommand(str(document.relative_to(REPO)), number, line, raw.strip(), argv))
    return found


def program(command: DocCommand) -> str:
    """`traiding` for `.venv/bin/traiding` too: the name a reader types."""
    return Path(command.argv[0]).name if command.argv[0].endswith("/traiding") else command.argv[0]
