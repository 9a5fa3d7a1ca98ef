"""The own corpus built once per test module, for the tests that query it."""

from __future__ import annotations

import pytest

from eval.harness import build_index, make_engine
from eval.own import OWN_CORPUS


@pytest.fixture(scope="module")
def own_engine(tmp_path_factory):
    index = tmp_path_factory.mktemp("own") / "index"
    config, _ = build_index(OWN_CORPUS, index)
    return make_engine(config)
