"""One ticket's life: the run's shared context and gateway, the worker (workspace -> sandbox ->
agent -> checks -> collect), gates, review, authorship, the worker's gateway variables."""
