"""The `seqssm bench` benchmarks: bench.py (the subcommand; accuracy, train vs mambapy, 1M-token inference),
scaling.py (time and memory against length per mixer), gpu.py (the prepared script for a lent GPU), measure.py
(each timed case in a fresh process, and its peak memory)."""
