"""The Range / If-Range decision as plain values (RFC 9110 §13.1.5, §14)."""

from __future__ import annotations

import pytest

from lanpeer.share.ranges import Part, Parts, Unsatisfiable, Whole, choose_range

ETAG = '"abc"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Whole()),
        ("bytes=0-", Part(0, 100)),
        ("bytes=10-19", Part(10, 20)),
        ("bytes=90-500", Part(90, 100)),  # clamped to the end
        ("bytes=-10", Part(90, 100)),
        ("bytes=-500", Part(0, 100)),
        ("bytes=99-99", Part(99, 100)),
        ("BYTES = 5 - 6", Part(5, 7)),
        ("bytes=100-", Unsatisfiable()),
        ("bytes=150-160", Unsatisfiable()),
        ("bytes=-0", Unsatisfiable()),
        ("bytes=9-3", Whole()),  # invalid: ignored, not 416
        ("bytes=0-1,5-6", Parts((Part(0, 2), Part(5, 7)))),
        ("bytes=0-1, 5-6 ,-3", Parts((Part(0, 2), Part(5, 7), Part(97, 100)))),
        ("bytes=0-1,200-300", Part(0, 2)),  # the unsatisfiable one is dropped
        ("bytes=200-,300-400", Unsatisfiable()),
        ("bytes=0-10,5-20", Whole()),  # overlapping: ignored
        ("bytes=5-6,0-1", Whole()),  # out of order: ignored
        ("bytes=" + ",".join(f"{i}-{i}" for i in range(0, 18, 2)), Whole()),  # over MAX_RANGES
        ("bytes=0-1,x", Whole()),
        ("items=0-5", Whole()),
        ("bytes=-", Whole()),
        ("bytes=abc", Whole()),
    ],
)
def test_range_header(header: str | None, expected: object) -> None:
    assert choose_range(header, None, ETAG, 100) == expected


def test_if_range_with_our_etag_keeps_the_range() -> None:
    assert choose_range("bytes=10-", ETAG, ETAG, 100) == Part(10, 100)


@pytest.mark.parametrize("if_range", ['"old"', 'W/"abc"', "Tue, 01 Dec 2026 10:00:00 GMT"])
def test_if_range_that_does_not_match_sends_everything(if_range: str) -> None:
    assert choose_range("bytes=10-", if_range, ETAG, 100) == Whole()


def test_an_empty_body_has_no_satisfiable_range() -> None:
    assert choose_range("bytes=0-", None, ETAG, 0) == Unsatisfiable()
    assert choose_range("bytes=-5", None, ETAG, 0) == Unsatisfiable()


def test_content_range_is_inclusive() -> None:
    assert Part(10, 20).content_range(100) == "bytes 10-19/100"
