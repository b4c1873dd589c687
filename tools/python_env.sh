#!/usr/bin/env bash
# Creates the pinned Python environment of the export toolkit in .venv (if it is not there yet).
#
# Disk, not time, is what CI machines run out of: PyPI's Linux torch wheel pulls in ~3 GB of CUDA
# libraries, and one `pip install -r` downloads every wheel before it installs any, so the peak
# was the environment plus all its wheels (8.1 GB). So on x86_64 Linux this script
#   1. installs the exact lock with --no-deps, the big wheels one pip call at a time (peak: the
#      environment plus the largest wheel);
#   2. deletes the GPU-only libraries that torch opens lazily and never on a CPU (cuDNN's engine
#      libraries, multi-GPU cuSOLVER, the NVRTC alternates, profiler libraries, static archives).
#      The libraries torch links against stay, so `import torch` works; the environment is 4.1 GB
#      instead of 5.3 GB. tools/test.sh runs the whole Python suite on the result.
# Elsewhere pip resolves the top-level pins of python/requirements.txt (CPU wheels, nothing to prune).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
# Written last: an interrupted install (a full disk, say) is redone from scratch, not half-used.
done_marker="$venv/.diffulex-complete"
if [ -f "$done_marker" ]; then
    exit 0
fi
export PIP_NO_CACHE_DIR=1
rm -rf "$venv"
python3 -m venv "$venv"
pip="$venv/bin/pip"

if [ "$(uname -sm)" = "Linux x86_64" ]; then
    lock=python/requirements-lock.txt
    heavy='^(torch|nvidia-|cuda-)'
    grep -vE '^\s*(#|$)' "$lock" | grep -vE "$heavy" >"$venv/light.txt"
    "$pip" install --quiet --no-deps -r "$venv/light.txt"
    grep -E "$heavy" "$lock" | while read -r pin; do
        "$pip" install --quiet --no-deps "$pin"
    done

    nvidia=$(echo "$venv"/lib/python3*/site-packages/nvidia)
    if [ -d "$nvidia" ]; then
        # cuDNN's front library (libcudnn.so.9) stays: torch links it. Its sub-libraries are
        # opened on the first cuDNN call, which needs a GPU.
        find "$nvidia/cudnn/lib" -name 'libcudnn_*.so*' -delete
        (
            cd "$nvidia/cu13/lib"
            rm -f libcusolverMg.so.* libnvrtc.alt.so.* libnvrtc-builtins.alt.so.* \
                libnvperf_host.so libnvperf_target.so libpcsamplingutil.so libcheckpoint.so \
                libnvblas.so.* libcufftw.so.* libcufile_rdma.so.* ./*.a
        )
    fi
else
    "$pip" install --quiet -r python/requirements.txt
fi
"$pip" install --quiet --no-deps -e python/

"$venv/bin/python" -c 'import torch, executorch.runtime, transformers'
touch "$done_marker"
