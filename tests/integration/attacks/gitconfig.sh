# Plant config and hooks in the clone that would create a file on the host if the lead ever
# ran git there (or followed them): fsmonitor, hooksPath, aliases, pager, hooks of every kind.
p="@PAYLOAD@"
git config core.fsmonitor "touch $p/fsmonitor"
git config core.pager "touch $p/pager"
git config core.editor "touch $p/editor"
git config core.sshCommand "touch $p/ssh"
git config diff.external "touch $p/diff-external"
git config uploadpack.packObjectsHook "touch $p/pack-objects-hook"
git config alias.bundle "!touch $p/alias-bundle"
git config alias.rev-list "!touch $p/alias-rev-list"
git config alias.status "!touch $p/alias-status"
mkdir -p .git/evil-hooks .git/hooks
for h in pre-commit prepare-commit-msg commit-msg post-commit post-checkout post-merge \
         reference-transaction pre-push post-rewrite pre-auto-gc fsmonitor-watchman; do
  printf '#!/bin/sh\ntouch %s/hook-%s\n' "$p" "$h" > ".git/hooks/$h"
  cp ".git/hooks/$h" ".git/evil-hooks/$h"
  chmod +x ".git/hooks/$h" ".git/evil-hooks/$h"
done
git config core.hooksPath "$PWD/.git/evil-hooks"
printf '[core]\n\tfsmonitor = touch %s/include\n' "$p" > .git/evil.inc
git config include.path evil.inc
echo planted > planted.txt
attempt "plant git config and hooks (judged on the host)" blocked
