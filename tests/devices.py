"""The devices kernel tests run on: CUDA only where available (tests/conftest.py skips it)."""

import pytest

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
