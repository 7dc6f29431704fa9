from __future__ import annotations

import pytest

from shared.http_api import check_bearer

TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, "missing", id="no-header"),
        pytest.param("", "missing", id="empty-header"),
        pytest.param(f"Basic {TOKEN}", "missing", id="wrong-scheme"),
        pytest.param("Bearer ", "missing", id="bearer-without-token"),
        pytest.param(f"Bearer {TOKEN}", "ok", id="right-token"),
        pytest.param(f"bearer {TOKEN}", "ok", id="scheme-is-case-insensitive"),
        pytest.param(f"Bearer {TOKEN}x", "wrong", id="longer-token"),
        pytest.param("Bearer nope", "wrong", id="other-token"),
    ],
)
def test_check_bearer(header: str | None, expected: str) -> None:
    assert check_bearer(header, TOKEN) == expected
