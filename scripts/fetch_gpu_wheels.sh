#!/usr/bin/env bash
# Fill .whl/ (gitignored) with the Python 3.12 wheels the GPU machine lacks, for scripts/gpu_check.sh to install
# there without a registry. Run here, where pip reaches a registry, once per change of the list below.
# The GPU machine has torch 2.11, Triton 3.6, lightning, torchaudio, torchmetrics, safetensors, matplotlib, tqdm,
# pyyaml, numpy, setuptools, wheel and pytest already; seqssm also needs these (with their own missing needs:
# omegaconf 2.4 needs only PyYAML; soundfile needs cffi, which needs pycparser):
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=(omegaconf==2.4.0 pyfaidx==0.9.2.2 biopython==1.88 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
rm -rf .whl && mkdir -p .whl
for spec in "${WHEELS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${PLATFORMS[@]}" -d .whl "$spec"
done
ls -1 .whl
du -sh .whl
