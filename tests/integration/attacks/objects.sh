# chmod and rewrite every object file the worker can see: its own clone's and the host's
# (mounted read-only at /runner/objects for the clone's alternates).
n=0; done_=0
for f in $(find /runner/objects -type f); do
  n=$((n+1))
  if chmod u+w "$f" 2>/dev/null && printf 'garbage' > "$f" 2>/dev/null; then done_=$((done_+1)); fi
done
attempt "rewrite $n host object files" "$([ "$n" -gt 0 ] && [ "$done_" -eq 0 ] && echo blocked || echo SUCCEEDED)"
for f in $(find .git/objects -type f); do chmod u+w "$f"; printf 'garbage' > "$f"; done
