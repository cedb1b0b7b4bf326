"""The phase's `egress:` entries: what one may say, and which host:port it lets out.

Pure Python (the phase loader validates entries with ``check_entry`` and must not pay for the
gateway's HTTP stack). Forms: ``host`` (ports 80 and 443), ``host:port``, ``*.domain`` (any
subdomain, not the domain itself), ``*.domain:port``, ``1.2.3.4``, ``1.2.3.4:port``,
``[::1]:port``. Names are case-insensitive and a trailing dot is ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = frozenset({80, 443})
# A DNS name as resolvers take it: dot-separated labels of letters, digits, '-' and '_'
# (some registries' names carry underscores), no label empty or longer than 63.
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_FORMS = ("use host, host:port, *.domain, *.domain:port, an IP such as 10.0.0.5 or "
          "10.0.0.5:8080, or [::1]:8080")


@dataclass(frozen=True)
class Entry:
    """One entry, normalised: a name (``wildcard``: its subdomains) or an IP, and ports."""

    name: str                  # lower case, no trailing dot; "" for an IP entry
    ip: IPAddress | None
    wildcard: bool
    ports: frozenset[int]

    def __str__(self) -> str:
        host = f"*.{self.name}" if self.wildcard else self.name
        if self.ip is not None:
            host = f"[{self.ip}]" if self.ip.version == 6 else str(self.ip)
        if self.ports == DEFAULT_PORTS:
            return host
        (port,) = self.ports
        return f"{host}:{port}"

    def matches(self, host: str, port: int) -> bool:
        """Whether ``host`` (as ``normal_host`` gives it) on ``port`` is what this lets out."""
        if port not in self.ports:
            return False
        if self.ip is not None:
            return _as_ip(host) == self.ip
        if self.wildcard:
            return host.endswith("." + self.name)
        return host == self.name


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def normal_host(host: str) -> str:
    """A host as entries are compared with it: lower case, no trailing dot, no brackets, an
    IP in its canonical spelling (so ``::0001`` is ``::1``)."""
    host = host.strip("[]").rstrip(".").lower()
    ip = _as_ip(host)
    return host if ip is None else str(ip)


def split_hostport(value: str, default_port: int | None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (or the bare host when ``default_port`` is given) as
    (host, port); ValueError when it is neither."""
    host, port = _split(value)
    if port is None:
        if default_port is None:
            raise ValueError(f"{value!r}: expected host:port")
        port = default_port
    return host, port


def _split(value: str) -> tuple[str, int | None]:
    """(host, port) of ``host[:port]`` or ``[v6][:port]``, port None when not given."""
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError(f"{value!r}: an IPv6 address needs its closing ']'")
        host, rest = value[1:close], value[close + 1:]
        ip = _as_ip(host)
        if ip is None or ip.version != 6:
            raise ValueError(f"{value!r}: [{host}] is not an IPv6 address")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"{value!r}: expected [address]:port")
        return host, _port(rest[1:], value)
    if value.count(":") > 1:
        # A bare IPv6 literal has no port; with one it needs brackets.
        if _as_ip(value) is not None:
            return value, None
        raise ValueError(f"{value!r}: write an IPv6 address with a port as [address]:port")
    host, sep, port = value.partition(":")
    return host, (_port(port, value) if sep else None)


def _port(text: str, value: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is outside 1..65535")
    return port


def parse_entry(value: str) -> Entry:
    """One `egress:` entry; ValueError with a one-line message saying what form to use."""
    if not isinstance(value, str):
        raise ValueError(f"an egress entry is a string: {_FORMS}")
    shown = repr(value)
    if not value:
        raise ValueError(f"an egress entry is empty: {_FORMS}")
    if "\x00" in value:
        raise ValueError(f"egress entry {shown} holds a NUL character: {_FORMS}")
    if any(c.isspace() for c in value):
        raise ValueError(f"egress entry {shown} holds a space: {_FORMS}")
    if "://" in value:
        raise ValueError(f"egress entry {shown} has a scheme: give only the host "
                         f"({_FORMS})")
    if "/" in value or "?" in value or "#" in value or "@" in value:
        raise ValueError(f"egress entry {shown} is more than a host and port: {_FORMS}")
    try:
        host, port = _split(value)
    except ValueError as e:
        raise ValueError(f"egress entry {e}: {_FORMS}") from None
    ports = DEFAULT_PORTS if port is None else frozenset({port})
    wildcard = host.startswith("*")
    if wildcard:
        if not host.startswith("*."):
            raise ValueError(f"egress entry {shown}: '*' only stands for subdomains, as in "
                             f"*.example.com")
        host = host[2:]
        if not host.rstrip("."):
            raise ValueError(f"egress entry {shown}: '*.' needs a domain after it, as in "
                             f"*.example.com")
    ip = _as_ip(host)
    if ip is not None:
        if wildcard:
            raise ValueError(f"egress entry {shown}: '*.' goes with a domain, not an IP")
        return Entry(name="", ip=ip, wildcard=False, ports=ports)
    if value.startswith("["):
        raise ValueError(f"egress entry {shown}: brackets hold an IPv6 address only")
    name = host.rstrip(".").lower()
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"egress entry {shown} is not a host name: {_FORMS}")
    if labels[-1].isdigit():
        # 1.2.3 or 010.0.0.1: resolvers read such names as (odd) IPs; say the IP instead.
        raise ValueError(f"egress entry {shown} is neither a host name nor an IP address: "
                         f"{_FORMS}")
    return Entry(name=name, ip=None, wildcard=wildcard, ports=ports)


def check_entry(value: str) -> str:
    """The entry in its normal spelling, or ValueError (for the phase file's validator)."""
    return str(parse_entry(value))


class Allowlist:
    """The entries of one phase; ``match`` says which (if any) lets host:port out."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(parse_entry(e) for e in entries)

    def match(self, host: str, port: int) -> Entry | None:
        host = normal_host(host)
        return next((e for e in self.entries if e.matches(host, port)), None)
