# Read what base does not reach: a secret committed on another branch of the host repo, by
# its object id and by listing every object the clone can borrow.
try "read another branch's blob by its id" git cat-file -e @SIDE_BLOB@
if git cat-file --batch-all-objects --batch 2>/dev/null | grep -q "@SIDE_SECRET@"; then
  attempt "find another branch's secret among all readable objects" SUCCEEDED
else
  attempt "find another branch's secret among all readable objects" blocked
fi
# Name that blob in a commit, bringing a decoy object filed under its id: the lead must not
# complete the commit from the host's objects (judged on the host).
decoy=$(echo decoy | git hash-object -w --stdin)
mkdir -p ".git/objects/$(echo @SIDE_BLOB@ | cut -c1-2)"
cp ".git/objects/$(echo "$decoy" | cut -c1-2)/$(echo "$decoy" | cut -c3-)" \
   ".git/objects/$(echo @SIDE_BLOB@ | cut -c1-2)/$(echo @SIDE_BLOB@ | cut -c3-)"
git update-index --add --cacheinfo "100644,@SIDE_BLOB@,leak.txt"
git commit -q -m "sidebranch: name the secret"
attempt "commit another branch's blob by its id for the host to complete" blocked
