"""Suite-wide settings.

The tests use tiny tensors, where a second intra-op thread buys nothing; on a 2-core machine shared with any other
busy process, OpenMP's spinning worker threads instead slow the many small operations of the chunked scan by
10-50x. One thread keeps the suite's time predictable (benchmarks set their own thread counts).
"""

import torch

torch.set_num_threads(1)
