# Reach another worker's clone: by its host path, and through /proc of other processes.
try "list other workspaces" sh -c 'ls -d @STATE_DIR@/*/workspaces/* | grep .'
for pid in $(ls /proc | grep -E '^[0-9]+$'); do
  if [ -e "/proc/$pid/root/workspace/marker-bystander" ]; then attempt "see bystander via /proc/$pid" SUCCEEDED; fi
done
attempt "see bystander via /proc" blocked
try "find the bystander's marker anywhere" sh -c 'find / -name marker-bystander 2>/dev/null | grep .'
