#!/usr/bin/env bash
# A plain shell CI job: run a phase, keep its machine-readable result and reports, and fail
# the job with runner's exit code (0 all integrated, 1 a ticket or gate failed, 2 bad input,
# 3 environment). Output is plain, timestamped lines when not on a terminal.
# With no Python on the CI host, run runner from its compose.yaml instead (-T: no TTY):
#   RUNNER="docker compose -f /opt/runner/compose.yaml run --rm -T runner" ./shell-ci.sh
set -uo pipefail
phase=${1:-phase.yaml}
runner() { ${RUNNER:-command runner} "$@"; }
runner run "$phase" --json --junit runner-junit.xml > runner-result.json
code=$?
run_id=$(python3 -c "import json; print(json.load(open('runner-result.json'))['run_id'])" 2>/dev/null) \
  && runner report "$run_id" > runner-report.md
runner clean >/dev/null || true      # containers and workspaces of ended runs; refs stay
exit $code
