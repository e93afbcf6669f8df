"""What the suite needs before it collects anything.

scikit-image, Ray and hypothesis are hard requirements of the tests (the
``test`` extra): without one of them the suite stops at collection with one
message naming what is missing, instead of skipping the tests that use it.
"""

from __future__ import annotations

import importlib

import pytest

REQUIRED = {
    "skimage": "scikit-image (the colour metrics and their checks)",
    "ray": "Ray (the batch and distributed tests)",
    "hypothesis": "hypothesis (the fuzz tests)",
}


def missing_requirements() -> list[str]:
    missing = []
    for module, what in REQUIRED.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(f"{module}: {what}")
    return missing


def pytest_configure(config):
    missing = missing_requirements()
    if missing:
        raise pytest.UsageError(
            "the test suite needs the test extra (pip install -e '.[test]'); missing: " + "; ".join(missing))
