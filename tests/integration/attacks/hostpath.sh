# Reach the host repo, its git dir, the payload dir, the run's state dir, by their host paths.
try "list the host repo" ls "@HOST_REPO@"
try "read the host repo's HEAD" cat "@HOST_REPO@/.git/HEAD"
try "write the payload dir" touch "@PAYLOAD@/hostpath"
try "list the state dir" ls "@STATE_DIR@"
try "reach the host root via /proc/1/root" ls "/proc/1/root@HOST_REPO@"
