#!/usr/bin/env bash
# One command for a machine with a GPU: the GPU tests, the MC pool pass with and without bf16 autocast, the
# heuristics benchmark and the callback on a pool of 1M 28x28 images (Gal CNN, K=20); then the pool pass side by side
# with one eval pass (1M items, with its breakdown), SWAG against K eval passes, and selection over 10^8 scores on
# the CPU (where the pool pass keeps its scores); every figure goes to one file.
# Without a GPU (or with GPU_CHECK_SIZE=tiny) everything runs at a tiny size on the CPU: tests/benchmarks runs it so
# the script cannot rot.
#
#   bash benchmarks/gpu_check.sh [OUTPUT_FILE]        # from the repository root; default gpu_check_results.txt
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check_results.txt}"
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then size=full; else size=tiny; fi
size="${GPU_CHECK_SIZE:-$size}"
if [ "$size" = full ]; then
  mc_pool=200000; callback_pool=1000000; heuristics_n=100000; repeats=3; k=20; limit=240; gpu_tests=tests
else
  mc_pool=64; callback_pool=128; heuristics_n=500; repeats=1; k=4; limit=120
  gpu_tests="tests/callbacks/test_scale_checks.py tests/heuristics/test_epig_heuristic.py"
fi
if [ "$size" = full ]; then
  scale_pool=1000000; swag_pool=10000; selection_n=100000000; scale_accelerator="--accelerator gpu"; selection_way=""
else
  scale_pool=2000; swag_pool=64; selection_n=10000; scale_accelerator=""; selection_way="--in-process"
fi
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
failed=0
step() {  # step NAME COMMAND...: run with a time limit, keep going on failure, record it
  local name="$1"; shift
  echo "== ${name}"
  local start=$SECONDS
  if ! timeout "$limit" "$@"; then echo "!! ${name}: FAILED (or past ${limit} s)"; failed=1; fi
  echo "-- ${name}: $((SECONDS - start)) s"
}
{
  echo "gpu_check (${size}) $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  python -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU: CPU fallback')"
  step "tests marked gpu" python -m pytest -q -p no:cacheprovider -m gpu -rs $gpu_tests
  step "MC pool pass, float32 and bf16 autocast" python -m benchmarks.gpu_check mc --pool "$mc_pool" --iterations "$k"
  step "heuristics benchmark" python benchmarks/heuristics.py --quick --skip-w2 --repeats "$repeats" --w1-n "$heuristics_n"
  step "callback on a pool of 28x28 images" python -m benchmarks.gpu_check callback --pool "$callback_pool" --iterations "$k"
  # Streamed pools and multi-node (#32): the pool from litdata chunks on this GPU; two "nodes" of two CPU gloo
  # processes each on 127.0.0.1 (one GPU cannot hold two nodes), at full size only: CI runs that test anyway.
  step "streamed pool, litdata chunks" python -m benchmarks.streaming --items "$([ "$size" = full ] && echo 1000000 || echo 3000)" --iterations "$k"
  if [ "$size" = full ]; then step "multi-node, 2 nodes x 2 CPU processes (gloo)" python -m pytest -q -p no:cacheprovider tests/distributed/test_multi_node.py; fi
  # The pool pass at its floor, SWAG at its floor, selection at scale (docs/scale.md).
  step "pool pass side by side with one eval pass" python -m benchmarks.scale --pool "$scale_pool" --repeats "$repeats" $scale_accelerator
  step "SWAG against K eval passes" python -m benchmarks.gpu_check swag --pool "$swag_pool" --iterations "$k" --repeats "$repeats"
  step "selection a chunk at a time" python -m benchmarks.selection --n "$selection_n" --repeats "$repeats" $selection_way
  echo "gpu_check done: $([ $failed = 0 ] && echo 'all steps ran' || echo 'some steps FAILED')"
} 2>&1 | grep --line-buffered -v "Warning\|warnings.warn\|^  warnings\|^  return\|deprecated" | tee "$out"
# The block above ran in a subshell (a pipeline): its verdict is read back from the file.
if grep -q "some steps FAILED" "$out"; then exit 1; fi
