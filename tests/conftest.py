"""Suite-wide settings.

The tests use tiny tensors, where a second intra-op thread buys nothing; on a 2-core machine shared with any other
busy process, OpenMP's spinning worker threads instead slow the many small operations of the chunked scan by
10-50x. One thread keeps the suite's time predictable (benchmarks set their own thread counts).
"""

import torch

torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Every test starts with one torch thread again (a test or benchmark that sets its own count does not leak it)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True, scope="session")
def _private_genome_cache(tmp_path_factory):
    """FASTA indexes and decompressed genomes go to a cache (domains/dna/genome_cache.py); keep the suite's out of
    the user's ~/.cache. Subprocesses inherit the variable."""
    import os

    old = os.environ.get("SEQSSM_CACHE")
    os.environ["SEQSSM_CACHE"] = str(tmp_path_factory.mktemp("seqssm-cache"))
    yield
    if old is None:
        os.environ.pop("SEQSSM_CACHE", None)
    else:
        os.environ["SEQSSM_CACHE"] = old
