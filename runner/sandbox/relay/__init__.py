"""The gateway for a sandbox its engine cannot give this machine's socket: the relay it runs
(script.py) and runner's half, carried over exec streams (tunnel.py)."""
