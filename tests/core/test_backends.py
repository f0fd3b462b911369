"""One backend vocabulary (seqssm.kernels.BACKENDS): the config accepts exactly it, every op accepts every name of
it, the configured name reaches every op of every block in training, streaming and decoding, and a model built
with each name equals the same model built with "reference". The "triton" model cases run under the Triton
interpreter in a fresh process (interpreter/triton_model_cases.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import seqssm.layers.gated_ssm as gated_ssm
import seqssm.layers.mamba as mamba
import seqssm.layers.mamba2 as mamba2
import seqssm.layers.s4d as s4d
from model_backends import CAUSAL, MODELS, outputs
from seqssm import ConfigError, ModelConfig
from seqssm import kernels as K
from seqssm.kernels import KernelInputError

HERE = Path(__file__).parent
INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


# ---------------------------------------------------------------------------------------------- the vocabulary
def _op_calls(backend: str) -> dict:
    """One tiny call of each op with `backend` (float32 CPU tensors)."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    b, d, l, n, k, h, p = 1, 4, 6, 3, 4, 2, 2
    return {
        "selective_scan": lambda: K.selective_scan(r(b, d, l), r(b, d, l).abs(), -r(d, n).abs(), r(b, n, l),
                                                   r(b, n, l), backend=backend),
        "selective_state_update": lambda: K.selective_state_update(r(b, d, n), r(b, d), r(b, d).abs(),
                                                                   -r(d, n).abs(), r(b, n), r(b, n), backend=backend),
        "causal_conv1d": lambda: K.causal_conv1d(r(b, d, l), r(d, k), backend=backend),
        "causal_conv1d_update": lambda: K.causal_conv1d_update(r(b, d), r(b, d, k - 1), r(d, k), backend=backend),
        "ssd_scan": lambda: K.ssd_scan(r(b, l, h, p), r(b, l, h).abs(), -r(h).abs(), r(b, l, 1, n), r(b, l, 1, n),
                                       backend=backend),
        "ssd_state_update": lambda: K.ssd_state_update(r(b, h, p, n), r(b, h, p), r(b, h).abs(), -r(h).abs(),
                                                       r(b, 1, n), r(b, 1, n), backend=backend),
    }


OPS = list(_op_calls("auto"))


def test_the_config_accepts_exactly_the_kernels_names():
    for name in K.BACKENDS:
        ModelConfig(scan_backend=name).validate()
    with pytest.raises(ConfigError, match=r"^scan_backend: must be one of auto, reference, chunked, cpu, triton, got 'cuda'$"):
        ModelConfig(scan_backend="cuda").validate()
    assert K.BACKENDS == ("auto", "reference", "chunked", "cpu", "triton")


@pytest.mark.parametrize("backend", ["auto", "reference", "chunked"])
@pytest.mark.parametrize("op", OPS)
def test_every_op_runs_every_pytorch_name(op, backend):
    calls, ref = _op_calls(backend), _op_calls("reference")
    got, want = calls[op](), ref[op]()
    assert rel_err(got, want) < 1e-5


@pytest.mark.skipif(INTERPRETER, reason="the interpreter is on in this process")
@pytest.mark.parametrize("op", OPS)
def test_every_op_knows_triton_and_refuses_cpu_tensors_in_one_line(op):
    with pytest.raises(KernelInputError, match=r"^backend: 'triton' cannot run here: tensors are on cpu \(the triton "
                       r"backend needs CUDA, or TRITON_INTERPRET=1\)$"):
        _op_calls("triton")[op]()


@pytest.mark.parametrize("op", OPS)
def test_every_op_names_an_unknown_backend_in_one_line(op):
    with pytest.raises(KernelInputError, match=r"^backend: unknown name 'torch'; choose one of auto, reference, "
                       r"chunked, cpu, triton$"):
        _op_calls("torch")[op]()


def test_info_says_which_ops_run_another_path_for_a_name():
    from seqssm.pipelines.info import collect

    notes = collect()["backend notes"]
    for (op, name), path in K.runs_instead().items():
        assert f"{op}: {name} runs {path}" in notes
    assert "ssd_scan: cpu runs chunked" in notes and "triton runs" not in notes  # every op has a Triton kernel


# ------------------------------------------------------------------- the configured name reaches every op
SPIED = {  # module -> the op names it imports from seqssm.kernels
    gated_ssm: ("causal_conv1d", "causal_conv1d_update"),
    mamba: ("selective_scan", "selective_state_update"),
    s4d: ("selective_scan", "selective_state_update"),
    mamba2: ("causal_conv1d", "causal_conv1d_update", "ssd_scan", "ssd_state_update"),
}
EXPECTED = {  # model -> ops its forward/backward, streaming and decoding must call
    "mamba": {"causal_conv1d", "selective_scan", "causal_conv1d_update", "selective_state_update"},
    "s4d-scan": {"causal_conv1d", "selective_scan", "causal_conv1d_update", "selective_state_update"},
    "mamba2": {"causal_conv1d", "ssd_scan", "causal_conv1d_update", "ssd_state_update"},
    "bimamba": {"causal_conv1d", "selective_scan"},
    "caduceus-ps": {"causal_conv1d", "selective_scan"},
}


@pytest.mark.parametrize("backend", ["reference", "chunked"])
@pytest.mark.parametrize("model", list(MODELS))
def test_the_configured_backend_reaches_every_op(model, backend, monkeypatch):
    calls = []
    for module, names in SPIED.items():
        for name in names:
            fn = getattr(module, name)

            def spy(*a, _fn=fn, _name=name, **kw):
                calls.append((_name, kw.get("backend", "<default>")))
                return _fn(*a, **kw)

            monkeypatch.setattr(module, name, spy)
    outputs(model, backend, torch.float64)
    assert {op for op, _ in calls} == EXPECTED[model]
    assert {be for _, be in calls} == {backend}, sorted(set(calls))


# ------------------------------------------------------------------------------ equal to "reference" on CPU
@pytest.mark.parametrize("backend", ["chunked", "auto"])
@pytest.mark.parametrize("model", list(MODELS))
def test_a_model_with_each_backend_equals_reference(model, backend):
    want = outputs(model, "reference", torch.float64)
    got = outputs(model, backend, torch.float64)
    assert got.keys() == want.keys() and any("A_log" in key for key in want)
    for key in want:
        assert rel_err(got[key], want[key]) < 1e-10, key
    if model in CAUSAL:  # streaming and decoding equal the parallel pass
        assert rel_err(got["streamed"], got["output"]) < 1e-10
        assert rel_err(got["decoded"], got["output"]) < 1e-10


# --------------------------------------------------------------------------- "triton" under the interpreter
@pytest.mark.slow
def test_triton_models_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1",
               PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(HERE / "interpreter"),
         str(HERE / "interpreter" / "triton_model_cases.py")],
        capture_output=True, text=True, env=env, timeout=900,
    )
    tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
    assert proc.returncode == 0, f"interpreter model cases failed:\n{tail}\n{proc.stderr[-2000:]}"
    assert " passed" in tail and "failed" not in tail and "skipped" not in tail
