"""Shared fixtures; the helpers themselves are in helpers.py."""

from __future__ import annotations

import pytest
from helpers import Events


@pytest.fixture
def events() -> Events:
    return Events("acme")
