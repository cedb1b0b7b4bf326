from __future__ import annotations

import pytest

from runner.worker.gates import matches, outside_paths


@pytest.mark.parametrize("path,pattern,expected", [
    ("app/src/a/B.kt", "app/src/**", True),
    ("app/srcx/B.kt", "app/src/**", False),
    ("docs/x.md", "docs", True),
    ("docsy/x.md", "docs", False),
    ("a.txt", "*.txt", True),
    ("d/a.txt", "*.txt", False),
    ("d/e/a.txt", "**/*.txt", True),
    ("a.txt", "**/*.txt", True),
    ("a.txt", "./a.txt", True),
    ("a1.txt", "a?.txt", True),
    ("x.md/build.gradle", "*.md", False),
    ("docs/a/b.md", "docs/", True),
])
def test_glob(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, [pattern]) is expected


def test_outside_paths() -> None:
    assert outside_paths(["a", "b/c"], []) == []
    assert outside_paths(["a", "b/c"], ["b/**"]) == ["a"]
