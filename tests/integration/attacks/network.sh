# Open a TCP connection to a port the test listens on at the host's 127.0.0.1; resolve names.
try "connect to host 127.0.0.1:@PORT@" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/@PORT@'
try "connect to localhost:@PORT@" timeout 5 bash -c 'exec 3<>/dev/tcp/localhost/@PORT@'
try "resolve a host name" timeout 5 getent hosts example.com
try "have an interface besides lo" sh -c 'ls /sys/class/net | grep -v "^lo$"'
