# The sandbox's first process (runner's supervisor, which runs the lead's commands, where it
# has one): signal it, read it, write to its channel, change its program; then forge its
# frames on both streams and flood them while the lead goes on. The host judges that this
# ticket's result is what the script really did (exit 3), not what it forged.
try "signal the first process" kill -0 1
for f in environ mem fd/0 fd/1 fd/2; do try "read /proc/1/$f" head -c 1 "/proc/1/$f"; done
try "list the first process's files" ls /proc/1/fd
try "write a request to its channel" sh -c 'printf "MQAvADEAdHJ1ZQ==\n" >> /proc/1/fd/0'
try "change the supervisor's program" sh -c ': >> /runner/supervisor/inside.py'
# An exit frame (kind x, id, size, "0") for the first ids a lead might use, on stdout and on
# stderr, then a header that claims more than comes.
for id in 1 2 3 4 5 6 7 8; do
  printf "x\000\000\000\\$(printf %03o "$id")\000\000\000\0010"
  printf "x\000\000\000\\$(printf %03o "$id")\000\000\000\0010" >&2
done
printf 'o\000\000\000\001\377\377\377\377'
# 32 MB on each stream from processes left behind, still writing when this command ends.
( head -c 32m /dev/zero | tr '\0' F ) &
( head -c 32m /dev/zero | tr '\0' E >&2 ) &
echo "forged its frames"
exit 3
