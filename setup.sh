#!/usr/bin/env bash
# Install runner and what it needs on this machine.
#   ./setup.sh          runner itself (pip install -e .), and debootstrap when it is missing
#   ./setup.sh --dev    also the test dependencies (claude-agent-sdk, whose wheel carries
#                       the Claude Code binary the claude-code tests run), docker-compose,
#                       xmllint, chromium (the HTML report test), zsh (the completion
#                       test) and a venv for the non-root-user test
# Docker must be running already (.ci/run starts one when it is not). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"
dev=false
[ "${1:-}" = "--dev" ] && dev=true

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

# debootstrap makes the Debian base image when no container registry is reachable.
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "setup: installing debootstrap (Debian's package) for offline base images"
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq debootstrap >/dev/null \
    || echo "setup: could not install debootstrap; images need a reachable registry then" >&2
fi

if $dev; then
  python3 -m pip install -q -e '.[dev]'
  # The compose.yaml test needs a Compose command; Debian's package is v1 (docker-compose).
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    echo "setup: installing docker-compose (Debian's package) for the compose.yaml test"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq docker-compose >/dev/null
  fi
  # The JUnit tests validate runner's reports with xmllint (Debian's libxml2-utils).
  if ! command -v xmllint >/dev/null 2>&1; then
    echo "setup: installing libxml2-utils (xmllint) for the JUnit report tests"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq libxml2-utils >/dev/null
  fi
  # The HTML report is opened in a real headless browser (Debian's chromium).
  if ! command -v chromium >/dev/null 2>&1; then
    echo "setup: installing chromium (Debian's package) for the HTML report test"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  # Shell completion is tested in a real zsh too.
  if ! command -v zsh >/dev/null 2>&1; then
    echo "setup: installing zsh (Debian's package) for the completion test"
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends zsh >/dev/null
  fi
  # The non-root host-user test runs runner as another uid: it needs an interpreter that
  # uid can read (pyenv's lives under /root). Debian's python3 in a venv beside the tree.
  if [ "$(id -u)" = 0 ] && [ -x /usr/bin/python3 ]; then
    if [ ! -x .venv-nonroot/bin/runner ]; then
      echo "setup: making .venv-nonroot (Debian's python3) for the non-root-user test"
      /usr/bin/python3 -m venv .venv-nonroot
    fi
    .venv-nonroot/bin/python -m pip install -q -e .    # again: new dependencies too
    chmod -R a+rX .venv-nonroot
  fi
else
  python3 -m pip install -q -e .
fi
echo "setup: done ($(command -v runner || echo 'runner: not on PATH; use python3 -m runner'))"
