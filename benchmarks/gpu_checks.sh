#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one go: the GPU-marked tests, then the DepictQA-7B-shape
# training and inference throughput benchmarks (random weights, nothing downloaded).
#
#   bash benchmarks/gpu_checks.sh                     # results + logs in benchmarks/results/
#   RESULTS=/tmp/r STEPS=10 bash benchmarks/gpu_checks.sh
#
# Files are named after the GPU (e.g. train_throughput_h100.json). Each stage has a time limit so
# one hung stage cannot eat the others' time; a failed stage is reported and the next one runs.
set -uo pipefail
results=${RESULTS:-benchmarks/results}
steps=${STEPS:-20}
mkdir -p "$results"
export PYTHONUNBUFFERED=1
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[1].lower())") || { echo "no CUDA GPU"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$results/gpu_env_$gpu.log"
python3 -c "import torch, transformers, peft, lightning; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__)" | tee -a "$results/gpu_env_$gpu.log"

stage() {  # stage NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$results/${name}_$gpu.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc after $((SECONDS - start))s"
}

stage gpu_tests "${TESTS_LIMIT:-240}" python3 -m pytest -m gpu tests/gpu -p no:cacheprovider -q
stage train_throughput "${TRAIN_LIMIT:-420}" python3 benchmarks/train_throughput.py --steps "$steps" \
    --out "$results/train_throughput_$gpu.json"
stage infer_throughput "${INFER_LIMIT:-240}" python3 benchmarks/infer_throughput.py --shape 7b --device cuda \
    --batch-size 16 --pairs 64 --out "$results/infer_throughput_$gpu.json"
