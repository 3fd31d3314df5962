"""What a person says to a run through its annotations: approve a live run, cancel a run, resume a halted one.

Pure functions of the annotation map, so the rules are unit-tested without a cluster. Who may write which of
these is the API server's business: the chart's ValidatingAdmissionPolicy lets only members of the approvers
group approve, in their own name, a run that waits at its gate and that someone else created (`CREATED_BY`,
which it requires on live runs and keeps as it was created).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

APPROVED_BY = "traiding.io/approved-by"
CREATED_BY = "traiding.io/created-by"
CANCEL = "traiding.io/cancel"
RESUME = "traiding.io/resume"

_TRUE = {"true", "yes", "1"}


def cancel_requested(annotations: Mapping[str, str]) -> bool:
    return annotations.get(CANCEL, "").strip().lower() in _TRUE


def approver(annotations: Mapping[str, str]) -> str | None:
    """Who approved the run (the admission policy makes it the user who wrote the annotation), or None."""
    return annotations.get(APPROVED_BY, "").strip() or None


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time (`2026-11-27T16:00:00Z`); one without a zone counts as UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
