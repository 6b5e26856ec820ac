"""Pytest fixtures for the namespace lab. Use from a test module with::

    pytest_plugins = ["tests.lab.fixtures"]

    def test_something(lab: Lab) -> None: ...

``lab`` is one lab per test module (building one takes about a second), handed to each test with
its faults undone afterwards (``Lab.reset_faults``). The lab is torn down when the module ends,
whether its tests passed or not. Without root or without ``ip``/``nft``/``tc`` the tests are
skipped, unless CI=true, where they fail instead: CI must never pass by skipping the lab.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence

import pytest

from tests.lab.netlab import Lab, missing_tools


def require_lab(extra_tools: Sequence[str] = ()) -> None:
    """Skip (or, with CI=true, fail) when the lab, or a tool a test runs in it, is not available."""
    why = None
    if os.geteuid() != 0:
        why = "the namespace lab needs root (ip netns, nft, tc)"
    elif missing := missing_tools() + [tool for tool in extra_tools if shutil.which(tool) is None]:
        why = f"the namespace lab needs {', '.join(missing)}: install tests/debian-packages.txt"
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so not skipping: {why}")
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab_module() -> Iterator[Lab]:
    """One lab for the whole test module; ``down()`` runs however the module ends."""
    require_lab()
    with Lab() as lab:
        yield lab


@pytest.fixture
def lab(lab_module: Lab) -> Iterator[Lab]:
    """The module's lab, with every fault injected by the test undone afterwards."""
    try:
        yield lab_module
    finally:
        lab_module.reset_faults()
