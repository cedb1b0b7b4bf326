# Write anywhere outside /workspace (and the scratch /tmp).
for p in /etc/evil /usr/bin/evil /evil /runner/evil /runner/objects/evil /gradle-ro-cache/evil \
         /var/evil /root/evil /home/evil; do
  try "write $p" touch "$p"
done
try "write /proc/sys/kernel/hostname" sh -c 'echo evil > /proc/sys/kernel/hostname'
try "remount / read-write" mount -o remount,rw /
try "mknod a block device" mknod /tmp/evil-dev b 8 0
