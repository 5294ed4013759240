#!/usr/bin/env bash
# What a lent GPU machine runs (see bench/RESULTS.md), from the repository root:
#   bash bench/on_device.sh cuda OUTDIR    the CUDA benchmark (SPEC section 4: N = 8,
#                                          S = 1e8), the kernel alone against a call, then
#                                          the CUDA tests on the real device
#   bash bench/on_device.sh host OUTDIR    the patrol step and the CPU kernel on its cores
# It uses the machine's own Python packages (numba, numba-cuda, torch, ...) and this
# checkout on PYTHONPATH; logs and JSON go to OUTDIR. On 2026-11-24 the machine's image had
# numpy 2.5.2, with which numba-cuda 0.30.4 does not import (np.row_stack is gone): carry a
# numpy 2.4 wheel and put it first on PYTHONPATH (see /work/.library/device/README.md).
set -uo pipefail
part=${1:-}
out=${2:-.}
if [[ $part != cuda && $part != host ]]; then
    echo "usage: bash bench/on_device.sh cuda|host [OUTDIR]" >&2
    exit 2
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python=python3
run() {  # run SECONDS NAME COMMAND...: a bounded step, its output kept in OUTDIR/NAME.log
    local seconds=$1 name=$2
    shift 2
    echo "## $name: $*"
    timeout "$seconds" "$@" 2>&1 | tee "$out/$name.log"
    echo "## $name: exit ${PIPESTATUS[0]}"
}
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
$python -c "import sys, numpy, numba, scipy; from numba import cuda; import importlib.metadata as m; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__, 'numba-cuda', m.version('numba-cuda'), 'scipy', scipy.__version__)"
nproc
$python -m fastcov info
case $part in
cuda)
    run 330 bench-cuda $python -m bench --sizes 8x1e8,8x1e6,32x1e7,2x1e8 \
        --impl cuda-copy,fastcov-cuda,fastcov-cuda-general,torch-compile,torch-compile-formula \
        --json "$out/bench-cuda.json" --plot "$out/bench-cuda.png"
    run 120 cuda-kernel $python -m bench.cuda_kernel
    run 200 tests-cuda $python -m pytest -q -k cuda -n 6 -p no:cacheprovider tests
    ;;
host)
    run 200 patrol $python -c "from bench import patrol as b; b.scaling([10, 32, 100, 316, 1000], 8, 0, 3)"
    run 200 bench-cpu $python -m bench --sizes 8x1e7 --impl fastcov-cpu-out,fastcov-cpu,naive,jax-jit \
        --json "$out/bench-cpu.json" --plot "$out/bench-cpu.png"
    ;;
esac
