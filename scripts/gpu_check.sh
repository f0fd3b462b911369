#!/usr/bin/env bash
# The one prepared GPU command: scripts/gpu_check.sh OUTDIR [--dry-run]
#
# On the lent GPU machine (Python 3.12, torch 2.11 + CUDA 13, Triton 3.6, no registry), from the repository root:
#   1. installs the carried wheels of .whl/ (scripts/fetch_gpu_wheels.sh fills it) and seqssm itself into a
#      private site directory (nothing of the machine's own packages changes);
#   2. `seqssm info`; the ahead-of-time compile test under the machine's Triton (sm_80 and sm_90, no spills);
#   3. `seqssm bench gpu`: the GPU kernel tests, copy bandwidth, the scan for L = 1K ... 1M, a Mamba layer against
#      SDPA attention, the 24-layer d_model 768 model at L = 2^20.
# Sized to finish within 8 minutes: each step has a time limit, and the benchmark saves its JSON and markdown after
# every case, so a step stopped by its limit still leaves what it finished. Writes into OUTDIR: info.txt, aot.log,
# bench.log, gpu.json, gpu.md (and install.log).
#
# --dry-run rehearses the same steps on a CPU machine: the benchmark's --dry-run (every case at tiny sizes under
# the Triton interpreter) and no wheel install unless .whl/ matches this Python.
set -uo pipefail
OUTDIR=${1:?usage: scripts/gpu_check.sh OUTDIR [--dry-run]}
DRY=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
SITE=${SEQSSM_SITE:-/tmp/seqssm-site}
T0=$SECONDS
step() { echo "== [$((SECONDS - T0)) s] $*" | tee -a "$OUTDIR/bench.log"; }

step "install carried wheels and seqssm into $SITE"
{
    if compgen -G ".whl/*.whl" >/dev/null && [ "$DRY" != "--dry-run" ]; then
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
    fi
    if [ "$DRY" != "--dry-run" ]; then
        # a regular (not editable) install of this checkout; build/ is gitignored
        $PY -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
            --target "$SITE" .
    fi
} >"$OUTDIR/install.log" 2>&1 || { echo "install failed, see $OUTDIR/install.log"; tail -5 "$OUTDIR/install.log"; exit 1; }
[ "$DRY" != "--dry-run" ] && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

step "seqssm info"
timeout 60 $PY -m seqssm.pipelines.cli info >"$OUTDIR/info.txt" 2>&1
cat "$OUTDIR/info.txt"

# time limits: the GPU machine's (8 minutes in all); a dry run on a small CPU machine under the interpreter is slower
AOT_LIMIT=150 TOTAL=470
[ "$DRY" = "--dry-run" ] && AOT_LIMIT=900 TOTAL=3600

step "ahead-of-time compile test (sm_80, sm_90) under this Triton"
timeout "$AOT_LIMIT" $PY -m pytest -q -p no:cacheprovider tests/kernels/test_aot_compile.py >"$OUTDIR/aot.log" 2>&1
echo "aot: exit $? ($(tail -1 "$OUTDIR/aot.log"))" | tee -a "$OUTDIR/bench.log"

step "seqssm bench gpu $DRY"
LIMIT=$(( TOTAL - (SECONDS - T0) ))  # on the GPU: the whole command within 8 minutes
timeout "$LIMIT" $PY -m seqssm.pipelines.cli bench gpu $DRY --out "$OUTDIR/gpu.json" 2>&1 | tee -a "$OUTDIR/bench.log"
status=${PIPESTATUS[0]}
if [ "$status" = 124 ]; then
    step "bench stopped at its ${LIMIT} s limit: $OUTDIR/gpu.json holds the cases it finished"
else
    step "done: bench exit $status (0: no case in error)"
fi
exit "$status"
