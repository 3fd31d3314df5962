"""One result of `traiding doctor`: a named check, its outcome and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not applicable here (skipped)
    detail: str

    @property
    def status(self) -> str:
        return {True: "ok", False: "fail", None: "skip"}[self.ok]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail}

    def as_line(self) -> str:
        mark = {True: "ok", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark:>4}  {self.name:<16} {self.detail}"
