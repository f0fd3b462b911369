"""`seqssm lm sample`: continue a prompt with a trained byte LM (no Lightning: a model folder and the core's
recurrent decoding, seqssm.generation)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

import seqssm
from seqssm import GenerateConfig
from seqssm.pipelines.jobconfig import UsageError


def sample_lm(model_dir: str | os.PathLike, prompt: bytes, gen: GenerateConfig, device: str = "cpu") -> bytes:
    """The continuation (without the prompt) that the byte LM in `model_dir` generates after `prompt`."""
    model_dir = Path(model_dir)
    if (model_dir / "model" / "config.yaml").is_file():
        model_dir = model_dir / "model"  # a run folder of `seqssm lm train`: its model/ subfolder
    if not (model_dir / "config.yaml").is_file():
        raise UsageError(f"--model {model_dir}: not a seqssm model folder (no config.yaml)")
    if not prompt:
        raise UsageError("--prompt: must not be empty")
    gen.validate(as_options=True)
    model = seqssm.load_pretrained(str(model_dir))
    if model.config.head != "lm":
        raise UsageError(f"--model {model_dir}: head is {model.config.head!r}, sampling needs a language model ('lm')")
    model = model.to(device).eval()
    ids = torch.tensor([list(prompt)], dtype=torch.long, device=device)  # (1, l)
    with torch.no_grad():
        out = model.generate(ids, gen.max_new_tokens, temperature=gen.temperature, top_k=gen.top_k, top_p=gen.top_p,
                             seed=gen.seed)
    new = out[0, ids.shape[1] :].tolist()
    return bytes(b if b < 256 else ord("?") for b in new)
