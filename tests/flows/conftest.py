"""Fixtures for the flow tests: the loopback LLM test server."""

from __future__ import annotations

import pytest

from parallelner.testing.openai_server import OpenAIServer


@pytest.fixture
def llm_server():
    """The loopback OpenAI-compatible test server, zero service time, 64 slots."""
    with OpenAIServer(model="test-model") as srv:
        yield srv


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect API (SQLite) for every in-process flow test of the session."""
    import os

    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=240):
        yield
