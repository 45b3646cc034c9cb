#!/usr/bin/env bash
# One GPU session for docs/performance.md, run on the GPU machine from the repo root, phase by
# phase in calls made back to back (the machine keeps /tmp while it is warm). Staged inputs sit in
# .stage-gpu*/ (ignored by git; a device call carries at most 64 MiB, so the default model's GGUF
# travels in three parts, model.part0-2): depthkv.xz (our CUDA build), llama.cpp.tar.xz.
# Results go to $OUT.
#   scripts/gpu/session.sh start      # unpack, write the 8B-shaped model (in the background)
#   scripts/gpu/session.sh peer-build # start llama.cpp's build (~8 min) once our GPU timings are done
#   scripts/gpu/session.sh large CTXS # 8B-shaped model: ours vs transformers at CTXS (e.g. 8192,32768)
#   scripts/gpu/session.sh small      # default model on the GPU: ours vs llama.cpp
#   scripts/gpu/session.sh first-answer # default model, fresh driver cache: time to a first answer
#   scripts/gpu/session.sh jit        # candle's PTX modules: driver compile time each and together
#   scripts/gpu/session.sh cpu        # default model on two CPU cores: ours vs llama.cpp
#   scripts/gpu/session.sh parity     # family fixtures against transformers on the GPU, f32 and bf16
#   scripts/gpu/session.sh calibration # 8B-shaped: calibrate 32 layers on 8 prompts of 8K tokens
#   scripts/gpu/session.sh flash      # our flash kernels against the materialized path (needs it.xz:
#                                     # the integration tests built with --features cuda)
set -uo pipefail
export LD_LIBRARY_PATH=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/usr/local/cuda/lib64
export PYTHONUNBUFFERED=1
W=/tmp/dkv
BIN=$W/depthkv
GGUF=$W/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$W" "${OUT:-/tmp/out}"
OUT=${OUT:-/tmp/out}
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
# Collects the model's parts from this call's carried folders; true once all three are here.
model_ready() {
  cp .stage-gpu*/model.part* "$W/" 2>/dev/null || true
  if [ ! -f "$GGUF" ] && [ "$(ls "$W"/model.part* 2>/dev/null | wc -l)" -ge 3 ]; then
    cat "$W"/model.part0 "$W"/model.part1 "$W"/model.part2 > "$GGUF" && rm "$W"/model.part*
  fi
  [ -f "$GGUF" ]
}
model_ready || true

case ${1:-} in
start)
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.csv"
  xz -dc .stage-gpu/depthkv.xz > "$BIN" && chmod +x "$BIN"
  [ -f .stage-gpu/it.xz ] && xz -dc .stage-gpu/it.xz > "$W/it" && chmod +x "$W/it"
  # llama.cpp's source is kept here; its build (14 jobs on 16 cores) starts with `peer-build`, after
  # our own timings: run beside the bench, it slowed our host side (decode, re-run latency).
  [ -f .stage-gpu/llama.cpp.tar.xz ] && cp .stage-gpu/llama.cpp.tar.xz "$W/"
  log "8B-shaped model (in the background)"
  setsid bash -c "python3 scripts/gpu/make_8b_shaped.py $W/l8b 32 > $W/l8b.log 2>&1 && touch $W/l8b.done" < /dev/null &
  ;;
peer-build)
  setsid bash scripts/gpu/llamacpp.sh build "$W/llama.cpp.tar.xz" "$W/lc" > "$W/llamacpp-build.log" 2>&1 < /dev/null &
  log "llama.cpp build started"
  ;;
large)
  for _ in $(seq 1 60); do [ -f "$W/l8b.done" ] && break; sleep 5; done
  ctxs=${2:-8192,32768}
  log "ours, 8B-shaped, $ctxs"
  tag=${ctxs//,/_}
  timeout "${OURS_S:-420}" "$BIN" bench --model "$W/l8b" --device cuda --dtype bf16 --contexts "$ctxs" --budgets 0.2 --reps 3 \
    --bandwidth-gbs 4800 --op-profile ${BENCH_EXTRA:-} --json "$OUT/ours_8b_$tag.json" --overwrite > "$OUT/ours_8b_$tag.log" 2>&1
  log "ours done (rc $?); transformers"
  timeout "${PEER_S:-150}" python3 scripts/gpu/transformers_speed.py "$W/l8b" "$ctxs" "$OUT/transformers_8b_$tag.json" 3 32 \
    > "$OUT/transformers_8b_$tag.log" 2>&1
  log "transformers done (rc $?)"
  ;;
small)
  model_ready || { log "default model not staged"; exit 1; }
  log "ours, default model, GPU"
  "$BIN" bench --model "$GGUF" --device cuda --contexts 1024,4096,8192 --budgets 0.2 --reps 3 --decode-tokens 128 \
    --bandwidth-gbs 4800 --no-stock --json "$OUT/ours_small_gpu.json" --overwrite > "$OUT/ours_small_gpu.log" 2>&1
  log "ours (f32, exact) done (rc $?); bf16 (flash kernels)"
  "$BIN" bench --model "$GGUF" --device cuda --dtype bf16 --contexts 1024,4096,8192 --budgets 0.2 --reps 3 \
    --decode-tokens 128 --bandwidth-gbs 4800 --no-stock --json "$OUT/ours_small_gpu_bf16.json" --overwrite \
    > "$OUT/ours_small_gpu_bf16.log" 2>&1
  log "ours bf16 done (rc $?); waiting for llama.cpp's build"
  for _ in $(seq 1 60); do [ -x "$W/lc/llama.cpp/build/bin/llama-bench" ] && break; sleep 5; done
  tail -3 "$W/llamacpp-build.log" >> "$OUT/session.log"
  timeout 240 bash scripts/gpu/llamacpp.sh gpu "$W/lc" "$GGUF" "$OUT/llamacpp_gpu.json" > "$OUT/llamacpp_gpu.log" 2>&1
  log "llama.cpp GPU done (rc $?)"
  bash "$0" first-answer
  ;;
first-answer)
  # A fresh machine: an empty driver compute cache (candle's PTX is compiled on first use), with
  # our parallel warm-up and without it; then the same cache again (a machine that ran it before).
  model_ready || { log "default model not staged"; exit 1; }
  cache=$(mktemp -d)
  for run in fresh:1 fresh-no-warmup:0 warm:1; do
    name=${run%%:*}
    [ "$name" = warm ] || cache=$(mktemp -d)
    t0=$(date +%s.%N)
    CUDA_CACHE_PATH=$cache DEPTHKV_JIT_WARMUP=${run##*:} "$BIN" generate --model "$GGUF" --device cuda --max-new 16 \
      -p "What is the capital of France?" > "$OUT/first_answer_$name.txt" 2>&1
    log "first answer, $name: $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s (rc $?)"
  done
  ;;
jit)
  # How long the driver takes to compile each of candle's PTX modules (staged from the CUDA build's
  # candle-kernels OUT_DIR as .stage-gpu/candle_ptx.tar.xz).
  mkdir -p "$W/ptx" && tar -xJf .stage-gpu/candle_ptx.tar.xz -C "$W/ptx"
  timeout 300 python3 scripts/gpu/jit_times.py "$W/ptx" "$OUT/jit_times.json" > "$OUT/jit_times.log" 2>&1
  log "jit times (rc $?)"
  ;;
cpu)
  model_ready || { log "default model not staged"; exit 1; }
  CUDA_VISIBLE_DEVICES= CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 timeout 330 taskset -c 0,1 "$BIN" bench --model "$GGUF" \
    --device cpu --contexts 512,2048 --budgets 0.2 --reps 3 --decode-tokens 32 --with-quantized \
    --json "$OUT/ours_small_cpu.json" --overwrite > "$OUT/ours_small_cpu.log" 2>&1
  log "ours CPU done (rc $?)"
  timeout 220 bash scripts/gpu/llamacpp.sh cpu "$W/lc" "$GGUF" "$OUT/llamacpp_cpu.json" > "$OUT/llamacpp_cpu.log" 2>&1
  log "llama.cpp CPU done (rc $?)"
  ;;
parity)
  for dt in f32 bf16; do
    timeout 120 "$BIN" parity tests/fixtures/families --device cuda --dtype $dt > "$OUT/parity_$dt.json" 2> "$OUT/parity_$dt.log"
    log "parity $dt (rc $?)"
  done
  ;;
calibration)
  for _ in $(seq 1 60); do [ -f "$W/l8b.done" ] && break; sleep 5; done
  "$BIN" bench --model "$W/l8b" --device cuda --dtype bf16 --contexts 8192 --reps 1 --calib-prompts 8 \
    --calib-context 8192 --json "$OUT/ours_8b_calibration.json" --overwrite > "$OUT/ours_8b_calibration.log" 2>&1
  log "calibration (rc $?)"
  ;;
flash)
  model_ready || { log "default model not staged"; exit 1; }
  mkdir -p "$W/home/models" && ln -sf "$GGUF" "$W/home/models/"
  DEPTHKV_HOME=$W/home timeout 300 "$W/it" flash --test-threads 1 --nocapture > "$OUT/flash_tests.log" 2>&1
  log "flash tests (rc $?)"
  ;;
*) echo "usage: $0 start|peer-build|large CTXS|small|first-answer|jit|cpu|parity|calibration|flash" >&2; exit 2 ;;
esac
