"""Signed, expiring result links, as relays hand out CDN URLs (`...mp4?exp=<unix s>&sig=<token>`).

Every query issues a fresh signature; the job remembers which ones it issued, so a forged, revoked or
expired link is refused (403, as a CDN answers) while a newly queried one works.
"""

from __future__ import annotations

import hashlib
from typing import Final

from vidgate.testing.fake_upstream.jobs import Job

__all__ = ["LINK_TTL_SECONDS", "issue_link", "link_valid", "revoke_link"]

LINK_TTL_SECONDS: Final = 3600


def issue_link(job: Job, name: str, unix_now: float) -> str:
    """A fresh `exp=...&sig=...` query string for the file `name` of `job`."""
    exp = int(unix_now) + LINK_TTL_SECONDS
    # Deterministic per (job, file, issue number): fresh on every query without any randomness.
    # (A count of the links still held would repeat after a revoke and bring a revoked link back.)
    job.links_issued += 1
    seed = f"{job.id}|{name}|{exp}|{job.links_issued}"
    sig = hashlib.sha256(seed.encode()).hexdigest()[:32]
    job.links[(name, sig)] = exp
    return f"exp={exp}&sig={sig}"


def link_valid(job: Job, name: str, exp: str | None, sig: str | None, unix_now: float) -> bool:
    """True when this link was issued for `name`, carries its own expiry, and has not expired."""
    if not exp or not sig:
        return False
    issued = job.links.get((name, sig))
    return issued is not None and str(int(issued)) == exp and unix_now <= issued


def revoke_link(job: Job, name: str, sig: str | None) -> None:
    """Make a link fail from now on (an `expired_link` directive expires it early, for good)."""
    if sig is not None:
        job.links.pop((name, sig), None)
