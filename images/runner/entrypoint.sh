#!/bin/sh
# Run runner as the user who owns the repo (the working directory, the repo mounted at its
# own path), not as root: refs, run records and workspaces it makes in the host repo stay
# that user's, and workers run as that uid too. The Docker socket's group is kept so that
# runner can still drive the engine. Started as another user (compose `user:`), it just runs.
set -eu
uid=$(stat -c %u .)
gid=$(stat -c %g .)
if [ "$(id -u)" != 0 ] || [ "$uid" = 0 ]; then
  exec runner "$@"
fi
groups=$gid
if [ -S /var/run/docker.sock ]; then
  groups="$groups,$(stat -c %g /var/run/docker.sock)"
fi
# No passwd entry for that uid here: give it a HOME it can write.
export HOME=/tmp
exec setpriv --reuid="$uid" --regid="$gid" --groups="$groups" -- runner "$@"
