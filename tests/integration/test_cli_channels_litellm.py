"""`vidgate channels test` against an `openai` channel in front of LiteLLM, whose `GET /v1/videos`
answers 400 with a JSON error: a JSON error from past the authentication proves the channel is
reachable and took the key, so it is no "is base_url the API root?" failure."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.test_cli_channels import channel, environment, fake_upstream, run

__all__ = ["fake_upstream"]  # the module's fake upstream process, shared with this module's tests


def test_channels_test_takes_litellms_400_to_the_job_list_as_reachable_and_accepted(
    tmp_path: Path, fake_upstream: str
) -> None:
    litellm = {**channel("litellm", "openai", fake_upstream), "headers": {"X-Fake": "list_400"}}
    wrong_key = {**channel("litellm-wrong-key", "openai", fake_upstream, key="sk-wrong-0123456789"),
                 "headers": {"X-Fake": "list_400"}}  # fmt: skip
    result = run(["channels", "test"], environment(tmp_path, [litellm, wrong_key]))
    verdicts = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())

    assert "ok    litellm" in verdicts, result.stdout + result.stderr
    ok = verdicts["ok    litellm"]
    assert ok.startswith("reachable and the credentials are accepted")
    assert "HTTP 400" in ok and "LLM Provider NOT provided" in ok  # what the upstream answered
    assert "base_url" not in ok
    # A refused key is still a refusal: the fake (like LiteLLM) authenticates before anything else.
    assert "credentials were refused" in verdicts["FAIL  litellm-wrong-key"]
    assert result.returncode == 1
    journal = httpx.get(f"{fake_upstream}/_fake/journal").json()
    assert ("list", 400) in [(e["op"], e["status"]) for e in journal]
    assert not [e for e in journal if e["op"] in ("create", "remix")]  # no (paid) job was made
