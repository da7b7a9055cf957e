"""A/B throughput runs: two sides (git refs, package versions, Keras backends) timed in alternating
processes on the same machine, judged from pairs (``python -m bench ab``, ``python -m bench bisect``)."""
