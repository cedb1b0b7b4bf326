"""A Docker engine: the local one (linked clones, bind mounts) and another machine's (volumes,
a clone from a bundle)."""
