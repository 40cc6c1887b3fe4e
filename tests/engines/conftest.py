"""Fixtures for the device-side tests; the bundle helpers live in device_fixtures.py (imported by tests)."""

import pytest

from tests.engines.device_fixtures import make_bundle


@pytest.fixture
def bundle(tmp_path):
    """A complete tiny bundle (jetson-nano target) in tmp_path."""
    return make_bundle(tmp_path / "bundle")
