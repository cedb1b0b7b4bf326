"""The `egress:` entries: which forms are accepted (in their normal spelling), which are refused
with a message that says what to write, and which host:port each one lets out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runner.gateway.allowlist import Allowlist, check_entry, normal_host, split_hostport
from tests.helpers import ROOT


@pytest.mark.parametrize("entry, normal", [
    ("maven.corp.example", "maven.corp.example"),
    ("Maven.Corp.EXAMPLE.", "maven.corp.example"),
    ("nexus.corp:8081", "nexus.corp:8081"),
    ("localhost:8080", "localhost:8080"),
    ("*.corp.example", "*.corp.example"),
    ("*.Corp.example:8443", "*.corp.example:8443"),
    ("_acme.example.com", "_acme.example.com"),
    ("10.0.0.5", "10.0.0.5"),
    ("127.0.0.1:9000", "127.0.0.1:9000"),
    ("[::1]:8080", "[::1]:8080"),
    ("[0:0::1]", "[::1]"),
    ("::1", "[::1]"),
])
def test_accepted_entries_come_back_in_their_normal_spelling(entry: str, normal: str) -> None:
    assert check_entry(entry) == normal


@pytest.mark.parametrize("entry, says", [
    ("", "is empty"),
    ("maven.corp.example ", "holds a space"),
    ("a b", "holds a space"),
    ("https://maven.corp.example", "has a scheme: give only the host"),
    ("maven.corp.example/maven2", "is more than a host and port"),
    ("user@host", "is more than a host and port"),
    ("host:0", "port 0 is outside 1..65535"),
    ("host:65536", "port 65536 is outside 1..65535"),
    ("host:", "the port must be a number"),
    ("host:http", "the port must be a number"),
    ("*", "'*' only stands for subdomains"),
    ("*corp.example", "'*' only stands for subdomains"),
    ("*.", "'*.' needs a domain after it"),
    ("*.10.0.0.1", "not an IP"),
    ("host\x00", "holds a NUL character"),
    ("[::1", "closing ']'"),
    ("[10.0.0.1]:80", "is not an IPv6 address"),
    ("::1:80x", "[address]:port"),
    ("a..b", "is not a host name"),
    ("-a.com", "is not a host name"),
    ("1.2.3", "neither a host name nor an IP"),
])
def test_refused_entries_say_what_form_to_use(entry: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_entry(entry)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message
    assert "*.domain" in message or "as in *.example.com" in message or "an IP" in message


def test_a_name_lets_out_ports_80_and_443_only_unless_a_port_is_given() -> None:
    allow = Allowlist(["maven.corp.example", "nexus.corp:8081"])
    assert allow.match("maven.corp.example", 443)
    assert allow.match("MAVEN.corp.example.", 80)
    assert not allow.match("maven.corp.example", 8080)
    assert allow.match("nexus.corp", 8081)
    assert not allow.match("nexus.corp", 443)
    assert not allow.match("evil.maven.corp.example", 443)
    assert not allow.match("corp.example", 443)


def test_a_wildcard_is_any_subdomain_but_not_the_domain_itself() -> None:
    allow = Allowlist(["*.corp.example", "*.corp:8443"])
    assert allow.match("plugins.corp.example", 443)
    assert allow.match("a.b.corp.example", 80)
    assert not allow.match("corp.example", 443)
    assert not allow.match("evilcorp.example", 443)
    assert allow.match("x.corp", 8443)
    assert not allow.match("x.corp", 443)


def test_ips_match_ips_only_in_any_spelling() -> None:
    allow = Allowlist(["127.0.0.1:9000", "[::1]:8080", "10.0.0.5"])
    assert allow.match("127.0.0.1", 9000)
    assert not allow.match("127.0.0.1", 9001)
    assert not allow.match("localhost", 9000)
    assert allow.match("[0::1]", 8080)
    assert allow.match("::1", 8080)
    assert allow.match("10.0.0.5", 443)
    assert not allow.match("10.0.0.6", 443)


def test_an_empty_list_lets_nothing_out() -> None:
    assert not Allowlist([]).match("example.com", 443)


def test_host_and_port_of_a_request_target() -> None:
    assert split_hostport("example.com:443", None) == ("example.com", 443)
    assert split_hostport("[::1]:8080", None) == ("::1", 8080)
    assert split_hostport("example.com", 80) == ("example.com", 80)
    for bad in ("example.com", "example.com:x", "[::1]", "::1:80"):
        with pytest.raises(ValueError):
            split_hostport(bad, None)
    assert normal_host("Example.COM.") == "example.com"
    assert normal_host("[::0001]") == "::1"


def test_importing_the_gateway_and_its_allowlist_loads_no_http_stack() -> None:
    # runner's start-up and the phase loader must not pay for aiohttp.
    probe = ("import sys, runner.gateway, runner.gateway.allowlist; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('aiohttp', 'yarl', 'multidict', 'runner')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "aiohttp" not in out and "yarl" not in out
    assert "runner.gateway.server" not in out
