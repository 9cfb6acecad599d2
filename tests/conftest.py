"""Shared pytest options: ``--full`` (or ``INRARCH_FULL=1``) runs every generality case in Verilator."""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="run every case of tests/test_generality.py through Verilator (slow: minutes per case)")


@pytest.fixture(scope="session")
def full_mode(request):
    """True when the long test matrix was asked for (``--full`` or ``INRARCH_FULL=1``)."""
    return request.config.getoption("--full") or os.environ.get("INRARCH_FULL") == "1"
