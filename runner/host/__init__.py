"""The user's repository and this machine's files: every host-side git call, the run's object
store, worker-made trees, paths the engine sees, run locks, ref names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.faces import lazy_names


# What other packages import from here, by the module that holds it: each loaded when
# first asked for (runner/faces.py).
_EXPORTS = {
    "runner.host.gitops": ("SAFE_CONFIG", "HostRepo", "changes", "git", "git_lines", "git_out",
                           "git_records", "init_linked_clone", "open_host_repo", "set_alternates"),
    "runner.host.hostview": ("explain_mount_error", "forbid_inspection", "in_container",
                             "scratch_parent"),
    "runner.host.objectstore": ("STORE", "RunObjects"),
    "runner.host.refs": ("attempt_ref", "candidate_ref", "integrated_ref", "kept_beside",
                         "previous_target_ref", "run_refs", "ticket_ref"),
    "runner.host.runlock": ("driving", "is_driven"),
    "runner.host.trees": ("discard_tree", "files_holding"),
}
__getattr__ = lazy_names(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:
    from runner.host.gitops import (SAFE_CONFIG, HostRepo, changes, git, git_lines, git_out,
                                    git_records, init_linked_clone, open_host_repo, set_alternates)
    from runner.host.hostview import (explain_mount_error, forbid_inspection, in_container,
                                      scratch_parent)
    from runner.host.objectstore import STORE, RunObjects
    from runner.host.refs import (attempt_ref, candidate_ref, integrated_ref, kept_beside,
                                  previous_target_ref, run_refs, ticket_ref)
    from runner.host.runlock import driving, is_driven
    from runner.host.trees import discard_tree, files_holding
