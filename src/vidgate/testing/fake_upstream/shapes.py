"""Status words and value shapes: the canonical ones of each dialect, and the variants that the shape
directives (`synonyms`, `unknown_status`, `progress_str`) ask for to test an adapter's tolerance."""

from __future__ import annotations

from typing import Final

from vidgate.testing.fake_upstream.counters import Counters
from vidgate.testing.fake_upstream.directives import Directives
from vidgate.testing.fake_upstream.jobs import Job, JobDialect, Phase

__all__ = ["SYNONYMS", "UNKNOWN_STATUS", "canonical_status", "polled_status", "progress_value"]

_CANONICAL: Final[dict[JobDialect, dict[Phase, str]]] = {
    "openai": {"queued": "queued", "running": "in_progress", "completed": "completed", "failed": "failed"},
    "unified": {"queued": "pending", "running": "processing", "completed": "completed", "failed": "failed"},
}
# Words seen across relays and aggregators (api-spec §1.6, research-2 §C1), in mixed case on purpose.
SYNONYMS: Final[dict[Phase, tuple[str, ...]]] = {
    "queued": ("QUEUED", "pending", "not_start", "submitted"),
    "running": ("IN_PROGRESS", "running", "processing", "video_generating"),
    "completed": ("succeeded", "SUCCESS", "success", "completed"),
    "failed": ("FAILURE", "error", "failed"),
}
UNKNOWN_STATUS: Final = "warming_up"


def canonical_status(dialect: JobDialect, phase: Phase) -> str:
    return _CANONICAL[dialect][phase]


def polled_status(job: Job, phase: Phase, directives: Directives, counters: Counters) -> str:
    """The status word one poll reports. Call once per poll, after counting it in `job.polls`."""
    if counters.fire("unknown_status", job.prompt, directives.count("unknown_status")):
        return UNKNOWN_STATUS
    if directives.has("synonyms"):
        words = SYNONYMS[phase]
        return words[(job.polls - 1) % len(words)]  # deterministic: the poll number picks the word
    return canonical_status(job.dialect, phase)


def progress_value(progress: int, directives: Directives) -> int | str:
    """An int, or the string form some relays send (`"42"`) under `progress_str`."""
    return str(progress) if directives.has("progress_str") else progress
