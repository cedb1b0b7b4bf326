# A fork bomb: the pids limit must hold it; the other tickets must finish. After the bomb
# nothing here may fork (there are no pids left): builtins only.
mkfifo /tmp/never && exec 3<>/tmp/never
bomb() { bomb | bomb & }
( bomb ) 2>/dev/null &
read -t 8 -u 3 || true
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done
if [ "$n" -le @PIDS@ ]; then verdict=blocked; else verdict=SUCCEEDED; fi
attempt "fork past the pids limit ($n processes)" "$verdict"
kill -9 -1
