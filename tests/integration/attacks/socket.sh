# Reach a Docker engine: its socket files, any socket at all, its TCP port.
for s in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock; do
  try "find $s" test -e "$s"
done
try "find any unix socket" sh -c 'find / -xdev -type s 2>/dev/null | grep .'
try "docker TCP 2375" bash -c 'exec 3<>/dev/tcp/127.0.0.1/2375'
try "DOCKER_HOST set" test -n "${DOCKER_HOST:-}"
