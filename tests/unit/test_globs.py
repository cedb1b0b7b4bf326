"""Path globs: what they match, byte for byte, and the patterns refused when a phase is read."""

from __future__ import annotations

import pytest

from runner.phase.globs import check_glob, matches
from runner.phase.model import DEFAULT_PROTECTED


@pytest.mark.parametrize("path,pattern,expected", [
    ("src/a.kt", "src/[abc].kt", True),
    ("src/d.kt", "src/[abc].kt", False),
    ("src/d.kt", "src/[!abc].kt", True),
    ("src/a.kt", "src/[^abc].kt", False),
    ("src/q.kt", "src/[a-z].kt", True),
    ("src/Q.kt", "src/[a-z].kt", False),
    ("src/-.kt", "src/[-a].kt", True),
    ("src/].kt", "src/[]].kt", True),
    ("src/x.kt", "src/[!]].kt", True),
    ("src/[.kt", "src/[[].kt", True),
    ("a]b", "a]b", True),                    # a ']' outside a class is literal
    ("a/b", "a[!x]b", False),                # a class never matches '/'
    ("a/b", "a[+-0]b", False),               # not even through a range that spans it
    ("a.b", "a[+-0]b", True),
    ("a\\b", "a\\b", True),                  # a backslash is a literal character
])
def test_character_classes(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, [pattern]) is expected


@pytest.mark.parametrize("path,pattern,expected", [
    (".github/a\nb", ".github/**", True),    # a newline in a name does not escape `**`
    (".github/a\nb/c", ".github/**", True),
    (".github/a\nb", ".github", True),       # nor the plain-name cover
    ("a\nb.yml", "*.yml", True),             # nor `*`
    ("a\n/b.yml", "*.yml", False),           # `*` still stops at '/'
    ("docker-compose\n.yml", "docker-compose*.yml", True),
    ("x\n.github/a", ".github/**", False),   # the whole path must match, not a line of it
])
def test_names_with_newlines_match_exactly(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, [pattern]) is expected


def test_protected_catches_a_newline_in_a_name() -> None:
    assert matches(".github/a\nb", DEFAULT_PROTECTED)
    assert matches("gradle/wrapper/x\ny.jar", DEFAULT_PROTECTED)


@pytest.mark.parametrize("pattern", [*DEFAULT_PROTECTED, "**", "docs/", "./a.txt", "src/[ab]*",
                                     "a]b", "[[]x", "**/*.kt"])
def test_good_patterns_pass(pattern: str) -> None:
    assert check_glob(pattern) == pattern


@pytest.mark.parametrize("pattern,why", [
    ("", "empty pattern"),
    ("./", "empty pattern"),
    ("src/\0x", "NUL"),
    ("/etc/**", "absolute path"),
    ("../x", "'..'"),
    ("src/../../x", "'..'"),
    ("a//b", "empty or '.' segment"),
    ("a/./b", "empty or '.' segment"),
    ("src/[abc", "no ']' closes"),
    ("src/[]", "no ']' closes"),
    ("src/[!]", "no ']' closes"),
    ("src/[a/b]", "'/' in the character class"),
    ("src/[z-a].kt", "bad character class [z-a]"),
])
def test_bad_patterns_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(ValueError) as e:
        check_glob(pattern)
    assert why in str(e.value)
    assert repr(pattern) in str(e.value)


def test_absolute_path_says_what_to_write() -> None:
    with pytest.raises(ValueError, match="write 'etc/\\*\\*'"):
        check_glob("/etc/**")
