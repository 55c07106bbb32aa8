"""Fixtures of the dataset tests: the toy taxonomy on disk and read."""

import pytest

from domain_tune.datasets.taxonomy import read_esco
from tests.datasets.toy_taxonomy import write_toy_taxonomy


@pytest.fixture
def toy_path(tmp_path):
    return write_toy_taxonomy(tmp_path / "occupations.csv")


@pytest.fixture
def toy(toy_path):
    return read_esco(toy_path)
