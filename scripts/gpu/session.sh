#!/usr/bin/env bash
# One GPU session for docs/performance.md, run on the GPU machine from the repo root, phase by
# phase in calls made back to back (the machine keeps /tmp while it is warm). Staged inputs sit in
# .stage-gpu/ (ignored by git): depthkv.xz (our CUDA build), llama.cpp.tar.xz and the default
# model's GGUF split in parts (model.part*). Results go to $OUT.
#   scripts/gpu/session.sh start      # unpack, start llama.cpp's build, write the 8B-shaped model
#   scripts/gpu/session.sh large CTXS # 8B-shaped model: ours vs transformers at CTXS (e.g. 8192,32768)
#   scripts/gpu/session.sh small      # default model: ours vs llama.cpp on the GPU and on two CPU cores
#   scripts/gpu/session.sh parity     # family fixtures against transformers on the GPU, f32 and bf16
set -uo pipefail
export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/usr/local/cuda/lib64
export PYTHONUNBUFFERED=1
W=/tmp/dkv
BIN=$W/depthkv
GGUF=$W/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$W" "${OUT:-/tmp/out}"
OUT=${OUT:-/tmp/out}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
model_ready() {
  if [ ! -f "$GGUF" ]; then cp .stage-gpu/model.part* "$W/" 2>/dev/null || true; fi
  if ls "$W"/model.part* >/dev/null 2>&1 && [ "$(ls "$W"/model.part* | wc -l)" -ge "${MODEL_PARTS:-2}" ]; then
    cat "$W"/model.part* > "$GGUF" && rm "$W"/model.part*
  fi
  [ -f "$GGUF" ]
}

case ${1:-} in
start)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
  xz -dc .stage-gpu/depthkv.xz > "$BIN" && chmod +x "$BIN"
  cp .stage-gpu/model.part* "$W/" 2>/dev/null || true
  setsid bash scripts/gpu/llamacpp.sh build .stage-gpu/llama.cpp.tar.xz "$W/lc" > "$W/llamacpp-build.log" 2>&1 < /dev/null &
  log "8B-shaped model"
  python3 scripts/gpu/make_8b_shaped.py "$W/l8b" 32 2>&1 | tee -a "$OUT/session.log"
  ;;
large)
  ctxs=${2:-8192,32768}
  log "ours, 8B-shaped, $ctxs"
  "$BIN" bench --model "$W/l8b" --device cuda --dtype bf16 --contexts "$ctxs" --budgets 0.2 --reps 3 \
    --bandwidth-gbs 4800 --op-profile --json "$OUT/ours_8b.json" --overwrite > "$OUT/ours_8b.log" 2>&1
  log "ours done (rc $?); transformers"
  python3 scripts/gpu/transformers_speed.py "$W/l8b" "$ctxs" "$OUT/transformers_8b.json" 3 32 > "$OUT/transformers_8b.log" 2>&1
  log "transformers done (rc $?)"
  ;;
small)
  model_ready || { log "default model not staged"; exit 1; }
  log "ours, default model, GPU"
  "$BIN" bench --model "$GGUF" --device cuda --contexts 1024,4096,8192 --budgets 0.2 --reps 3 --decode-tokens 128 \
    --bandwidth-gbs 4800 --no-stock --json "$OUT/ours_small_gpu.json" --overwrite > "$OUT/ours_small_gpu.log" 2>&1
  log "ours done (rc $?); waiting for llama.cpp's build"
  for _ in $(seq 1 60); do [ -x "$W/lc/llama.cpp/build/bin/llama-bench" ] && break; sleep 5; done
  bash scripts/gpu/llamacpp.sh gpu "$W/lc" "$GGUF" "$OUT/llamacpp_gpu.json" > "$OUT/llamacpp_gpu.log" 2>&1
  log "llama.cpp GPU done (rc $?); CPU, two cores"
  CUDA_VISIBLE_DEVICES= CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 taskset -c 0,1 "$BIN" bench --model "$GGUF" --device cpu \
    --contexts 512,2048 --budgets 0.2 --reps 3 --decode-tokens 32 --with-quantized --json "$OUT/ours_small_cpu.json" --overwrite \
    > "$OUT/ours_small_cpu.log" 2>&1
  log "ours CPU done (rc $?)"
  bash scripts/gpu/llamacpp.sh cpu "$W/lc" "$GGUF" "$OUT/llamacpp_cpu.json" > "$OUT/llamacpp_cpu.log" 2>&1
  log "llama.cpp CPU done (rc $?)"
  ;;
parity)
  for dt in f32 bf16; do
    "$BIN" parity tests/fixtures/families --device cuda --dtype $dt > "$OUT/parity_$dt.json" 2> "$OUT/parity_$dt.log"
    log "parity $dt (rc $?)"
  done
  ;;
*) echo "usage: $0 start|large CTXS|small|parity" >&2; exit 2 ;;
esac
