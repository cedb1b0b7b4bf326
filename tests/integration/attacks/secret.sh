# Read the API key the runner process has in its environment.
try "key in env" sh -c 'env | grep -q "@SECRET@"'
try "key in any /proc/*/environ" sh -c 'cat /proc/*/environ 2>/dev/null | tr "\0" "\n" | grep -q "@SECRET@"'
try "ANTHROPIC_API_KEY set" test -n "${ANTHROPIC_API_KEY:-}"
try "key in init's environ or cmdline" sh -c 'cat /proc/1/environ /proc/1/cmdline | grep -aq "@SECRET@"'
