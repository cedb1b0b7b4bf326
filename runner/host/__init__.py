"""The user's repository and this machine's files: every host-side git call, the run's object
store, worker-made trees, paths the engine sees, run locks, ref names."""
