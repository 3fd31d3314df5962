"""What a person says to a run through its annotations: approve a live run, cancel a run.

Pure functions of the annotation map, so the rules are unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

APPROVED_BY = "traiding.io/approved-by"
APPROVED_AT = "traiding.io/approved-at"
CANCEL = "traiding.io/cancel"

_TRUE = {"true", "yes", "1"}


@dataclass(frozen=True)
class ApprovalRequest:
    approved_by: str
    approved_at: datetime | None  # the time the approver stated, if any and parseable


def cancel_requested(annotations: Mapping[str, str]) -> bool:
    return annotations.get(CANCEL, "").strip().lower() in _TRUE


def approval_request(annotations: Mapping[str, str]) -> ApprovalRequest | None:
    """The approval on the object, or None. An unparseable `approved-at` is ignored (the first-seen time counts)."""
    approved_by = annotations.get(APPROVED_BY, "").strip()
    if not approved_by:
        return None
    return ApprovalRequest(approved_by, parse_time(annotations.get(APPROVED_AT, "")))


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time (`2026-11-27T16:00:00Z`); one without a zone counts as UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
