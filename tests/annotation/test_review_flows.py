"""The review flows under a temporary Prefect API, the key read from a Secret block."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from parallelner import store
from parallelner.settings import load_settings
from tests.annotation.conftest import LabelStudioServer


@pytest.fixture(scope="module")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=240):
        yield


def test_push_and_pull_flows_with_a_secret_block(
    prefect_api, label_studio: LabelStudioServer, tmp_path: Path, pud_records
) -> None:
    from prefect.artifacts import Artifact
    from prefect.blocks.system import Secret

    from flows.review import review_pull, review_push

    home = tmp_path / "home"
    store.commit(pud_records[:2], "run-1", settings=load_settings(home=home))
    Secret(value=label_studio.token).save("ls-review-key", overwrite=True)
    config = {"home": str(home), "label_studio_url": label_studio.url,
              "label_studio_project": f"flow {uuid.uuid4().hex[:8]}"}  # fmt: skip

    pushed = review_push(config=config, api_key_secret="ls-review-key")
    assert pushed["imported"] == 2
    pulled = review_pull(config=config, api_key_secret="ls-review-key")
    assert pulled["pending"] == 2 and pulled["snapshot"] is None  # nothing annotated yet

    for key, line in (("review-push", '"imported": 2'), ("review-pull", '"pending": 2')):
        artifact = Artifact.get(key)
        assert artifact is not None and line in artifact.data
        assert f'"project_id": {pushed["project_id"]}' in artifact.data
        assert label_studio.token not in artifact.data
