# Plant symlinks where a careless lead would read or write on the host: the bundle's name,
# log names, the Gradle home, the clone's git files.
p="@PAYLOAD@"
ln -sf "$p/bundle" "/workspace/@TICKET@.bundle"
ln -sf "$p/log" "/workspace/@TICKET@.log"
ln -sf "$p/gradle-link" "$GRADLE_USER_HOME/link"
ln -sf "$p/gradle-home" "$GRADLE_USER_HOME/daemon"
ln -sf "$p/description" .git/description
ln -sf "$p/fetch-head" .git/FETCH_HEAD
ln -sf "$p/packed-refs" .git/packed-refs
ln -sfn "$p" .git/logs
echo linked > linked.txt
attempt "plant symlinks (judged on the host)" blocked
