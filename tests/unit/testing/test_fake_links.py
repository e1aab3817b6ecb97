"""The fake's signed result links: a revoked link stays dead even when a new one is issued at once."""

from __future__ import annotations

from vidgate.testing.fake_upstream.jobs import Job
from vidgate.testing.fake_upstream.links import issue_link, link_valid, revoke_link


def job() -> Job:
    return Job("j1", "j1", "seedance", 1, "m", "p", None, 0.0, 0.0, 1.0, 720, 1280, 5, "720x1280", {})


def parts(query: str) -> tuple[str, str]:
    exp, sig = (p.split("=", 1)[1] for p in query.split("&"))
    return exp, sig


def test_a_link_issued_after_a_revoke_never_brings_the_revoked_one_back() -> None:
    made = job()
    now = 1_800_000_000.0
    first_exp, first = parts(issue_link(made, "video.mp4", now))
    revoke_link(made, "video.mp4", first)
    second_exp, second = parts(issue_link(made, "video.mp4", now))  # the same second: the same expiry
    assert second != first
    assert not link_valid(made, "video.mp4", first_exp, first, now)
    assert link_valid(made, "video.mp4", second_exp, second, now)
