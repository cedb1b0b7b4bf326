# Read what base does not reach: a secret committed on another branch of the host repo, by
# its object id and by listing every object the clone can borrow.
try "read another branch's blob by its id" git cat-file -e @SIDE_BLOB@
if git cat-file --batch-all-objects --batch 2>/dev/null | grep -q "@SIDE_SECRET@"; then
  attempt "find another branch's secret among all readable objects" SUCCEEDED
else
  attempt "find another branch's secret among all readable objects" blocked
fi
