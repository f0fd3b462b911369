import pytest
import torch

import seqssm.kernels.scan.chunked as chunked


@pytest.fixture(autouse=True)
def _poison_and_seed(monkeypatch):
    """Every chunked-scan output buffer starts as NaN, so an element the kernel forgets to write fails the test."""
    monkeypatch.setattr(chunked, "POISON_OUTPUTS", True)
    torch.manual_seed(0)
