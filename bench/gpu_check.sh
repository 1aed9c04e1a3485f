#!/usr/bin/env bash
# The GPU checks of issue 13, as one script for a lent CUDA machine (device tool's `run`, with .whl carried):
# CUDA-only tests, the training-step bench on the GPU and a 3-trial `nas search --device cuda`.
# Everything it prints lands in $OUT (default ./gpu_out). The machine has its own torch; the wheels in .whl are
# nas's dependencies that its image lacks (optuna, alembic, colorlog, mako, sqlalchemy, pycocotools).
set -uo pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
nas() { python3 -m nas.cli "$@"; }
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc
  python3 -c "import torch, optuna; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'optuna', optuna.__version__)"
} 2>&1 | tee "$OUT/machine.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_blocks.py tests/test_trainer.py -k cuda -rs 2>&1 | tee "$OUT/tests.txt"
python3 bench/bench_train.py --part p --device cuda --models yolov5n,yolov5s --imgsz 256 --batch 8 --profile \
  2>&1 | tee "$OUT/bench_train_b8.txt"
python3 bench/bench_train.py --part p --device cuda --models yolov5n,yolov5s --imgsz 256 --batch 64 \
  2>&1 | tee "$OUT/bench_train_b64.txt"
rm -rf studies/gpu.db
( time nas search --space search_spaces/neck.yaml --budget 10gflops --trials 3 --device cuda \
    --storage sqlite:///studies/gpu.db ) 2>&1 | tee "$OUT/search_cuda.txt"
nas pareto --storage sqlite:///studies/gpu.db --study neck 2>&1 | tee "$OUT/pareto_cuda.txt"
