"""The lead's run: refs, images, scheduling, integration, phase checks, resume, the dry-run
plan."""
