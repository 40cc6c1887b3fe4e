"""Fixtures for the device-side tests; the bundle helpers live in device_fixtures.py (imported by tests)."""

import pytest

from tests.engines.device_fixtures import make_bundle


def pytest_collection_finish(session):
    """Start building the device Pythons' venvs in the background when a collected test runs under them
    (tests/engines/test_device_py*.py), so the first such test does not wait for all three in turn."""
    from tests.engines.device_python import DEVICE_PYTHONS, prefetch

    if any("test_device_py" in item.nodeid for item in session.items):
        prefetch(sorted(DEVICE_PYTHONS))


@pytest.fixture
def bundle(tmp_path):
    """A complete tiny bundle (jetson-nano target) in tmp_path."""
    return make_bundle(tmp_path / "bundle")


# real device Pythons and bundles made by the host pipeline, built once per session (tests/engines/device_python.py)


@pytest.fixture(scope="session")
def py36():
    from tests.engines.device_python import device_venv

    return device_venv("3.6")


@pytest.fixture(scope="session")
def py310():
    from tests.engines.device_python import device_venv

    return device_venv("3.10")


@pytest.fixture(scope="session")
def host_bundles(tmp_path_factory):
    """``{target: (bundle, host handle, JPEG photo)}``, each made on first use."""
    from tests.engines.device_python import host_bundle

    cache = {}

    def get(target):
        if target not in cache:
            cache[target] = host_bundle(tmp_path_factory.mktemp(target), target)
        return cache[target]

    return get
