"""Shared pytest options: ``--full`` (or ``INRARCH_FULL=1``) runs every generality case in Verilator;
``--scheduler tcp://host:8786`` runs those Verilator cases as tasks of that Dask cluster."""

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="run every case of tests/test_generality.py through Verilator (slow: minutes per case)")
    parser.addoption("--scheduler", default=None,
                     help="run the Verilator cases of tests/test_generality.py as tasks of this Dask scheduler "
                          "(e.g. tcp://host:8786), all at once")


@pytest.fixture(scope="session")
def full_mode(request):
    """True when the long test matrix was asked for (``--full`` or ``INRARCH_FULL=1``)."""
    return request.config.getoption("--full") or os.environ.get("INRARCH_FULL") == "1"
