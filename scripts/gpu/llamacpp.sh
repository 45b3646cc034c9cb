#!/usr/bin/env bash
# The llama.cpp peer on the GPU machine. llama.cpp's source comes from the package index's
# llama-cpp-python source package (vendor/llama.cpp; models/, docs/, tests/ dropped), packed as
# llama.cpp.tar.xz: see docs/performance.md.
#   scripts/gpu/llamacpp.sh build SRC.tar.xz DIR        # ~8 min on 16 cores; run it with setsid early
#   scripts/gpu/llamacpp.sh gpu DIR MODEL.gguf OUT.json   # prefill 512/2048/8000, decode at 1K/4K/8K context
#   scripts/gpu/llamacpp.sh cpu DIR MODEL.gguf OUT.json   # two cores, no GPU
set -euo pipefail
cmd=$1; shift
case $cmd in
build)
  src=$1 dir=$2
  mkdir -p "$dir" && tar -xJf "$src" -C "$dir"
  cd "$dir/llama.cpp"
  cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > build.log 2>&1
  cmake --build build -j14 --target llama-bench >> build.log 2>&1
  echo "llama.cpp built: $(ls "$dir"/llama.cpp/build/bin/llama-bench)" ;;
gpu)
  dir=$1 model=$2 out=$3 bin="$1/llama.cpp/build/bin/llama-bench"
  "$bin" -m "$model" -ngl 99 -fa 1 -r 3 -p 512,2048,8000 -n 0 -o json > "$out.prefill"
  "$bin" -m "$model" -ngl 99 -fa 1 -r 3 -p 0 -n 128 -d 1024,4096,8000 -o json > "$out.decode"
  python3 -c "import json,sys; json.dump({'prefill': json.load(open(sys.argv[1])), 'decode': json.load(open(sys.argv[2]))}, open(sys.argv[3], 'w'), indent=1)" "$out.prefill" "$out.decode" "$out" ;;
cpu)
  dir=$1 model=$2 out=$3 bin="$1/llama.cpp/build/bin/llama-bench"
  CUDA_VISIBLE_DEVICES= taskset -c 0,1 "$bin" -m "$model" -ngl 0 -t 2 -r 3 -p 512,2048 -n 32 -d 0,2048 -o json > "$out" ;;
*) echo "unknown command $cmd" >&2; exit 2 ;;
esac
