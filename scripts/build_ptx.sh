#!/usr/bin/env bash
# Compiles our CUDA kernels (src/engine/cuda/*.cu) to PTX for compute capability 8.0 and up.
# The PTX is committed, so building the `cuda` feature needs no CUDA compiler beyond candle's;
# run this after editing a .cu file (with nvcc on the PATH, e.g. after sourcing a CUDA env).
set -euo pipefail
cd "$(dirname "$0")/../src/engine/cuda"
for cu in *.cu; do
  nvcc -ptx -O3 -arch=compute_80 -o "${cu%.cu}.ptx" "$cu"
  echo "built ${cu%.cu}.ptx"
done
