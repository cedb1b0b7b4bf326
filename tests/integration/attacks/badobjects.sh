# Commit objects git's checks refuse (a malformed author line) and make them HEAD: the lead
# must not bring them into the host repo, whatever its git version (judged on the host).
tree=$(git write-tree)
bad=$(printf 'tree %s\nparent %s\nauthor evil <no-close 1 +0000\ncommitter x <x@y> 1 +0000\n\nbad\n' \
      "$tree" "$(git rev-parse HEAD)" | git hash-object -t commit -w --literally --stdin)
git update-ref HEAD "$bad"
attempt "commit a malformed object for the host to fetch (judged on the host)" blocked
