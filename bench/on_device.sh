#!/usr/bin/env bash
# What a lent GPU machine runs (see bench/RESULTS.md), from the repository root:
#   bash bench/on_device.sh cuda OUTDIR    the CUDA benchmark (SPEC section 4: N = 8,
#                                          S = 1e8), the kernel alone against a call, then
#                                          the CUDA tests on the real device
#   bash bench/on_device.sh host OUTDIR    the patrol step and the CPU kernel on its cores
# It uses the machine's own Python packages (numba, numba-cuda, torch, ...) and this
# checkout on PYTHONPATH; logs and JSON go to OUTDIR. Wheels in .whl/ (carried: the device
# tool's carry=[".whl"]) are installed first, ahead of the image's packages: on 2026-11-24
# the image had numpy 2.5.2, with which numba-cuda 0.30.4 does not import (np.row_stack is
# gone), and a numpy 2.4 wheel fixed it (/work/.library/device/README.md says how to fetch
# one). Each part's steps are bounded to finish within 9 minutes, one device call, since a
# session has 15 minutes of device time, the machine's start included.
set -uo pipefail
part=${1:-}
out=${2:-.}
if [[ $part != cuda && $part != host ]]; then
    echo "usage: bash bench/on_device.sh cuda|host [OUTDIR]" >&2
    exit 2
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
python=python3
if compgen -G ".whl/*.whl" > /dev/null; then
    $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH#"$PWD:"}
fi
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
    # --quick: no host-side measurements (compile latency, threads, ...) on the GPU's time.
    run 270 bench-cuda $python -m bench --quick --repeat 5 --sizes 8x1e8,8x1e6 \
        --impl cuda-copy,fastcov-cuda,fastcov-cuda-general,torch-compile,torch-compile-formula \
        --json "$out/bench-cuda.json" --plot "$out/bench-cuda.png"
    run 60 cuda-kernel $python -m bench.cuda_kernel
    run 180 tests-cuda $python -m pytest -q -k cuda -n 6 -p no:cacheprovider tests
    ;;
host)
    run 240 patrol $python -c "from bench import patrol as b; b.scaling([10, 32, 100, 316, 1000], 8, 0, 3)"
    run 240 bench-cpu $python -m bench --quick --sizes 8x1e7 \
        --impl copy,copy-rows,fastcov-cpu-out,fastcov-cpu,naive,jax-jit \
        --json "$out/bench-cpu.json" --plot "$out/bench-cpu.png"
    ;;
esac
