#!/usr/bin/env bash
# Assemble the ExecuTorch source tree that `EXECUTORCH_SOURCE_DIR` builds (docs/source-build.md).
#
#   bash tools/executorch_source.sh DEST            # from GitHub (needs network and git)
#   MIRROR=/work/.mirror bash tools/executorch_source.sh DEST
#                                                   # from local bare git directories named
#                                                   # <owner>+<name>/repo (no network)
#
# The tree is ExecuTorch at one fixed commit plus only the submodules the runtime build uses,
# each at the commit the superproject pins, so a clone stays about 0.5 GB instead of several.
# Submodules that are not needed (tokenizers, googletest, pybind11, prelude, mlx, ...)
# are left empty.
#
# Which commit, and why (docs/source-build.md, "Version"): the .pte files are written by the
# executorch==1.5.1 Python exporter, whose commit (3b606839, in the wheel's version.py) is not
# in the snapshot that this machine can reach. EXECUTORCH_COMMIT below is the newest `main` the
# snapshot has (version.txt 1.5.0, 2026-08-22, after the 1.5 release line was started); the
# whole test suite (every golden) gives the same tokens on it as on the 1.5.1 wheel. With
# network, EXECUTORCH_COMMIT=3b60683923245cf472b7323426920e15623ba361 (the 1.5.1 wheel's own
# commit) is the natural choice; it is untested here.
set -euo pipefail

DEST=${1:?usage: tools/executorch_source.sh DEST   (MIRROR=DIR for local bare repositories)}
EXECUTORCH_COMMIT=${EXECUTORCH_COMMIT:-cff6f4dd32e630945b7188512c1f2b4f102b05ad}
MIRROR=${MIRROR:-}
# Vulkan submodules too (feature `vulkan`): WITH_VULKAN=1.
WITH_VULKAN=${WITH_VULKAN:-0}
# LLM custom ops (extension/llm/custom_ops) include torchao headers: WITH_AO=1.
WITH_AO=${WITH_AO:-0}

# path in the tree | GitHub repository (owner/name)
SUBMODULES=(
    "backends/xnnpack/third-party/XNNPACK google/XNNPACK"
    "backends/xnnpack/third-party/cpuinfo pytorch/cpuinfo"
    "backends/xnnpack/third-party/pthreadpool google/pthreadpool"
    "backends/xnnpack/third-party/FXdiv Maratyszcza/FXdiv"
    "backends/xnnpack/third-party/FP16 Maratyszcza/FP16"
    "third-party/flatbuffers google/flatbuffers"
    "third-party/flatcc dvidelabs/flatcc"
    "third-party/pocketfft mreineck/pocketfft"
    "kernels/optimized/third-party/eigen libeigen/eigen"
    # Added unconditionally by third-party/CMakeLists.txt.
    "third-party/json nlohmann/json"
    "third-party/gflags gflags/gflags"
)
if [ "$WITH_VULKAN" = 1 ]; then
    SUBMODULES+=(
        "backends/vulkan/third-party/volk zeux/volk"
        "backends/vulkan/third-party/Vulkan-Headers KhronosGroup/Vulkan-Headers"
        "backends/vulkan/third-party/VulkanMemoryAllocator GPUOpen-LibrariesAndSDKs/VulkanMemoryAllocator"
    )
fi
if [ "$WITH_AO" = 1 ]; then
    SUBMODULES+=("third-party/ao pytorch/ao")
fi

# Commits that the snapshot cannot supply, replaced by the nearest one it has (MIRROR mode only;
# with network the superproject's own pin is used). Each replacement is documented in
# docs/source-build.md.
#   pthreadpool a56dcd79 (pinned since 2026-05-08) -> 0e6ca137 (2025-10-20, pinned by ExecuTorch
#   from 2026-03-17 to 2026-04-27); XNNPACK uses no pthreadpool function that 0e6ca137 lacks.
#   pocketfft 81874074 (2026-02-27) -> 33ae5dc (2024-03-22, head of its `cpp` branch in the
#   snapshot); header-only, used by the optimized kernels' FFT operators only.
#   json ac0133ea -> v3.11.3 (9cca280a, the newest release in the snapshot); header-only, added by
#   third-party/CMakeLists.txt but used only by backends this build leaves off.
#   eigen: GitLab only upstream; the GitHub mirror live-clones/eigen has the pinned commit.
declare -A MIRROR_SUBSTITUTE=(
    [a56dcd79c699366e7ac6466792c3025883ff7704]=0e6ca13779b57d397a5ba6bfdcaa8a275bc8ea2e
    [8187407446316c3d16f15e5395dabd4b22f4fec7]=33ae5dc94c9cdc7f1c78346504a85de87cadaa12
    [ac0133ea89a8fd730a9cc9649c5226a9995dc3e1]=9cca280a4d0ccf0c08f47a99aa71d1b0e52f8d03
)
declare -A MIRROR_REPO=(
    [libeigen/eigen]=live-clones/eigen
)

if [ -e "$DEST" ] && [ -n "$(ls -A "$DEST" 2>/dev/null)" ]; then
    echo "error: $DEST exists and is not empty" >&2
    exit 1
fi
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
MANIFEST=$DEST/.diffulex-source-manifest

if [ -n "$MIRROR" ]; then
    # --- From bare snapshots: git archive of each pinned commit into its path -----------------
    bare() { echo "$MIRROR/${1/\//+}/repo"; }
    ET=$(bare pytorch/executorch)
    # `git archive COMMIT` of a bare snapshot into DIR, leaving out the blobs the snapshot lacks
    # (a few large files: example gifs and tokenizers of ExecuTorch, Vulkan-Headers' C++
    # `vulkan_structs.hpp`; nothing the runtime build reads). Prints how many were left out.
    archive_into() {
        local gitdir=$1 commit=$2 dir=$3 excludes=() blob path
        for blob in $(git --git-dir="$gitdir" ls-tree -r "$commit" | awk '$2=="blob"{print $3}' |
            git --git-dir="$gitdir" cat-file --batch-check | awk '$2=="missing"{print $1}' | sort -u); do
            while read -r path; do excludes+=(":(exclude)$path"); done < <(
                git --git-dir="$gitdir" ls-tree -r "$commit" | awk -v b="$blob" '$3==b{print $4}')
        done
        git --git-dir="$gitdir" archive "$commit" -- . "${excludes[@]}" 2> >(grep -v '^error: invalid object' >&2) |
            tar -x -C "$dir"
        echo "${#excludes[@]}"
    }
    left_out=$(archive_into "$ET" "$EXECUTORCH_COMMIT" "$DEST")
    echo "executorch $EXECUTORCH_COMMIT pytorch/executorch ($left_out files absent from the snapshot left out)" >"$MANIFEST"
    for entry in "${SUBMODULES[@]}"; do
        read -r path repo <<<"$entry"
        pin=$(git --git-dir="$ET" ls-tree "$EXECUTORCH_COMMIT" "$path" | awk '{print $3}')
        commit=${MIRROR_SUBSTITUTE[$pin]:-$pin}
        source_repo=${MIRROR_REPO[$repo]:-$repo}
        git --git-dir="$(bare "$source_repo")" cat-file -e "$commit^{commit}"
        mkdir -p "$DEST/$path"
        left_out=$(archive_into "$(bare "$source_repo")" "$commit" "$DEST/$path")
        note=""
        [ "$commit" != "$pin" ] && note=" (pinned $pin is not in the snapshot)"
        [ "$left_out" != 0 ] && note="$note ($left_out files absent from the snapshot left out)"
        echo "$path $commit $source_repo$note" >>"$MANIFEST"
    done
    # KleidiAI (Arm microkernels, used by XNNPACK on aarch64) is not an ExecuTorch submodule:
    # XNNPACK downloads the commit named in cmake/DownloadKleidiAI.cmake at configure time. Without
    # network it goes to backends/xnnpack/third-party/kleidiai, where executorch-sys points
    # XNNPACK (KLEIDIAI_SOURCE_DIR) for aarch64 targets.
    kleidiai=$(grep -o 'kleidiai-[0-9a-f]\{40\}' "$DEST/backends/xnnpack/third-party/XNNPACK/cmake/DownloadKleidiAI.cmake" | head -1)
    kleidiai=${kleidiai#kleidiai-}
    if [ -n "$kleidiai" ] && [ -d "$(bare ARM-software/kleidiai)" ]; then
        mkdir -p "$DEST/backends/xnnpack/third-party/kleidiai"
        archive_into "$(bare ARM-software/kleidiai)" "$kleidiai" "$DEST/backends/xnnpack/third-party/kleidiai" >/dev/null
        echo "backends/xnnpack/third-party/kleidiai $kleidiai ARM-software/kleidiai (XNNPACK's pin; not an ExecuTorch submodule)" >>"$MANIFEST"
    fi
else
    # --- From GitHub ---------------------------------------------------------------------------
    git clone --filter=blob:none --no-checkout https://github.com/pytorch/executorch "$DEST"
    git -C "$DEST" checkout -q "$EXECUTORCH_COMMIT"
    echo "executorch $EXECUTORCH_COMMIT pytorch/executorch" >"$MANIFEST"
    for entry in "${SUBMODULES[@]}"; do
        read -r path _ <<<"$entry"
        # Eigen's URL in .gitmodules is gitlab.com/libeigen/eigen; git follows it.
        git -C "$DEST" submodule update --init --depth 1 -- "$path" ||
            git -C "$DEST" submodule update --init -- "$path"
        echo "$path $(git -C "$DEST/$path" rev-parse HEAD)" >>"$MANIFEST"
    done
fi

echo "ExecuTorch source tree in $DEST:"
cat "$MANIFEST"
echo "Build with: EXECUTORCH_SOURCE_DIR=$DEST cargo build --release"
