#!/usr/bin/env bash
# The sampling study of docs/audio.md: clips of a conditional run sampled several ways, then scored by the FSDD
# digit classifier (FID, IS, mIS, AM, asked-digit accuracy) next to the ceiling and the trigram floor.
#   scripts/audio_sampling_study.sh RUN CLASSIFIER FLOOR_CLIPS OUT [SECONDS_OF_DRIFT_RUN]
# One torch thread throughout (the machine is shared). Every step is a seqssm command; nothing else is measured.
set -euo pipefail
RUN=$1; CLF=$2; FLOOR=$3; OUT=$4; DRIFT=${5:-10}
S="${SEQSSM:-seqssm}"
mkdir -p "$OUT"
gen() {  # name, then generate options
  local name=$1; shift
  [ -f "$OUT/$name/generate.json" ] || $S audio generate --model "$RUN" --out "$OUT/$name" --seconds 1 --threads 1 \
      --no-png --seed 0 --temperature 1 "$@"   # later options win: --temperature 0.9 etc.
}
# conditional: every digit x every speaker, 2 clips each (100 clips)
gen cond_t1.0 --digit all --speaker all --batch 2
gen cond_t0.9 --digit all --speaker all --batch 2 --temperature 0.9
gen cond_t0.7 --digit all --speaker all --batch 2 --temperature 0.7
gen cond_t0.5 --digit all --speaker all --batch 2 --temperature 0.5
gen cond_t0.3 --digit all --speaker all --batch 2 --temperature 0.3
gen cond_top_p0.9 --digit all --speaker all --batch 2 --top-p 0.9
gen cond_rank2of4 --digit all --speaker all --batch 4 --keep 2   # SaShiMi's ranking: the 2 most likely of 4
# unconditional ([any digit, any speaker]): 100 clips
gen uncond_t1.0 --batch 100
gen uncond_t0.9 --batch 100 --temperature 0.9
gen uncond_t0.7 --batch 100 --temperature 0.7
gen uncond_t0.5 --batch 100 --temperature 0.5
gen uncond_t0.3 --batch 100 --temperature 0.3
gen uncond_top_p0.9 --batch 100 --top-p 0.9
gen uncond_rank100of200 --batch 200 --keep 100
$S audio score "$FLOOR" "$OUT"/cond_t1.0 "$OUT"/cond_t0.9 "$OUT"/cond_t0.7 "$OUT"/cond_t0.5 "$OUT"/cond_t0.3 "$OUT"/cond_top_p0.9 \
    "$OUT"/cond_rank2of4 "$OUT"/uncond_t1.0 "$OUT"/uncond_t0.9 "$OUT"/uncond_t0.7 "$OUT"/uncond_t0.5 "$OUT"/uncond_t0.3 \
    "$OUT"/uncond_top_p0.9 "$OUT"/uncond_rank100of200 \
    --label "floor: trigram" --label "cond T=1" --label "cond T=0.9" --label "cond T=0.7" --label "cond T=0.5" \
    --label "cond T=0.3" --label "cond top-p 0.9" --label "cond rank 2 of 4" --label "uncond T=1" --label "uncond T=0.9" \
    --label "uncond T=0.7" --label "uncond T=0.5" --label "uncond T=0.3" --label "uncond top-p 0.9" --label "uncond rank 100 of 200" \
    --classifier "$CLF" --ceiling --out "$OUT/score" --overwrite
# a long free run, scored one second at a time
if [ "$DRIFT" != "0" ]; then
  [ -f "$OUT/drift/generate.json" ] || $S audio generate --model "$RUN" --out "$OUT/drift" --seconds "$DRIFT" \
      --batch 16 --threads 1 --no-png --seed 1 --temperature 1
  $S audio score "$OUT/drift" --label "free run" --window 1 --classifier "$CLF" --out "$OUT/score_drift" --overwrite
fi
