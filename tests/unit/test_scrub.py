"""The key's scrub over a stream cut anywhere: what comes out is what went in with every copy
of the key masked, byte for byte, however the chunks fall."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from runner.gateway.scrub import MASK, Scrubber

KEY = b"sk-ant-key-0123456789"


def through(scrubber: Scrubber, data: bytes, cuts: list[int]) -> bytes:
    out, last = b"", 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += scrubber.feed(data[last:cut])
        last = cut
    return out + scrubber.flush()


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(st.binary(max_size=40), st.just(KEY), st.just(KEY[:7]),
                                st.just(b"s"), st.just(b"sk-ant-")), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=20))
def test_every_copy_is_masked_wherever_the_stream_is_cut(parts: list[bytes],
                                                          cuts: list[int]) -> None:
    data = b"".join(parts)
    scrubber = Scrubber(KEY)
    out = through(scrubber, data, [c for c in cuts if c <= len(data)])
    assert out == data.replace(KEY, MASK * len(KEY))
    assert KEY not in out
    assert scrubber.found == data.count(KEY)


def test_a_key_split_byte_by_byte_is_still_masked() -> None:
    data = b"echo: x-api-key: " + KEY + b"\r\n"
    scrubber = Scrubber(KEY)
    out = b"".join(scrubber.feed(data[i:i + 1]) for i in range(len(data))) + scrubber.flush()
    assert out == b"echo: x-api-key: " + MASK * len(KEY) + b"\r\n"
    assert scrubber.found == 1


def test_bytes_that_cannot_begin_the_key_are_never_held_back() -> None:
    scrubber = Scrubber(KEY)
    assert scrubber.feed(b"data: {\"type\": \"ping\"}\n\n") == b"data: {\"type\": \"ping\"}\n\n"
    assert scrubber.feed(b"... sk-an") == b"... "       # it may begin the key: held
    assert scrubber.feed(b"other") == b"sk-another"     # it did not
    assert scrubber.found == 0


def test_header_values_and_no_key_at_all() -> None:
    scrubber = Scrubber(KEY)
    assert scrubber.text("Bearer " + KEY.decode()) == "Bearer " + "*" * len(KEY)
    assert scrubber.found == 1
    assert Scrubber(b"").feed(b"anything") == b"anything"
