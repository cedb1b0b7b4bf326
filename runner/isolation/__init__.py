"""Isolation proven: the self-test's probes, the judgement of a worker's environment, the image
check, runner doctor."""
