"""Fixtures of the store tests: one real redis-server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServerMissingError, redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a redis-server started for this session (fails, never skips, without one)."""
    try:
        with redis_server() as url:
            yield url
    except RedisServerMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
