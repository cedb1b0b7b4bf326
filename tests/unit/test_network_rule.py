"""The self-test's network rule, judged on what probes report: only lo passes; an interface
besides it passes only when nothing answered through it (a Pod under an enforced
NetworkPolicy), and says plainly when traffic went out."""

from __future__ import annotations

from types import SimpleNamespace

from runner.isolation.secretenv import GivenEnv
from runner.isolation.selftest import Probed, _network


def _judge(network: str = "none", **seen: str) -> str | None:
    ctx = SimpleNamespace(phase=SimpleNamespace(network=network))
    probe = Probed("_probe1", dict(seen), GivenEnv(spec={}, image="i", image_env={}))
    return _network(ctx, probe)  # type: ignore[arg-type]


def test_only_lo_passes_whatever_else_was_tried() -> None:
    assert _judge(net="lo") is None


def test_an_interface_through_which_nothing_answered_passes() -> None:
    assert _judge(net="eth0 lo", tried="10.96.0.1:443 10.0.0.2:53", reached="") is None


def test_an_answer_through_it_fails_naming_what_answered() -> None:
    why = _judge(net="eth0 lo", tried="10.96.0.1:443 10.0.0.2:53", reached="10.96.0.1:443 ")
    assert why and "reached 10.96.0.1:443" in why and "does not enforce" in why


def test_nothing_to_try_is_not_proof() -> None:
    why = _judge(net="eth0 lo", tried="", reached="")
    assert why and "cannot be told" in why


def test_a_bridge_network_is_on_purpose() -> None:
    assert _judge("bridge", net="eth0 lo", reached="10.0.0.1:80") is None
