"""The `deploy` marker: tests that build the container image with podman (minutes each) run only when
asked for with `-m deploy` (any -m expression naming the marker; `make deploy-check` does so), and are
deselected otherwise, so that `make test` and CI stay fast. The checks of the compose file and the
Kubernetes manifests in this folder are not marked: they need only pip packages and run everywhere."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "deploy" in (config.option.markexpr or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("deploy") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("deploy") is None]
