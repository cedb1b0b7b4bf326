# Take far more memory than the limit.
if ( v=$(head -c 1200m /dev/zero | tr '\0' x); echo "${#v}" >/dev/null ) 2>/dev/null; then
  attempt "hold 1200m under a @MEMORY@ limit" SUCCEEDED
else
  attempt "hold 1200m under a @MEMORY@ limit" blocked
fi
