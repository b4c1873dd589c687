#!/usr/bin/env bash
# Build a glslc new enough for ExecuTorch's Vulkan shaders (docs/source-build.md, "Vulkan").
#
#   bash tools/build_glslc.sh DEST                    # from GitHub (needs network and git)
#   MIRROR=/work/.mirror bash tools/build_glslc.sh DEST
#                                                     # from local bare git directories named
#                                                     # <owner>+<name>/repo (no network)
#
# then build with `GLSLC=DEST/bin/glslc cargo build --features vulkan` (executorch-sys takes
# GLSLC before any glslc on PATH).
#
# Why: ExecuTorch's Vulkan shaders use GL_EXT_integer_dot_product (q8ta_linear_gemv_float.glsl,
# linear_fp_output_tile_int8_int8_compute.glslh). Debian 12's glslc (shaderc 2023.2) does not
# know that extension and stops the shader build half way; ExecuTorch asks for the glslc of the
# Vulkan SDK 1.4.341.1 or newer. shaderc v2026.3 with the glslang, SPIRV-Tools and
# SPIRV-Headers revisions of its own DEPS file is such a glslc. Only the glslc executable is
# built (no tests, no examples): about 10 minutes on 2 cores.
set -euo pipefail

DEST=${1:?usage: tools/build_glslc.sh DEST   (MIRROR=DIR for local bare repositories)}
MIRROR=${MIRROR:-}
JOBS=${JOBS:-$(nproc)}
CMAKE=${CMAKE:-cmake}

SHADERC_TAG=v2026.3
# path under shaderc | repository | revision (shaderc v2026.3's DEPS)
DEPS=(
    "third_party/glslang KhronosGroup/glslang 168d452a4f460d24b588fed08477a81c44ee27a1"
    "third_party/spirv-tools KhronosGroup/SPIRV-Tools b707790a898e44038547df54580022fc1cf89c3d"
    "third_party/spirv-headers KhronosGroup/SPIRV-Headers 29981f65241605e08b0ede4cfeb999fe3b723c6a"
)

# Writes `repository@revision` into directory $3 without a .git directory.
checkout() {
    local repo=$1 rev=$2 into=$3
    mkdir -p "$into"
    if [ -n "$MIRROR" ]; then
        git --git-dir="$MIRROR/${repo/\//+}/repo" archive "$rev" | tar -x -C "$into"
    else
        git -C "$into" init -q
        git -C "$into" fetch -q --depth 1 "https://github.com/$repo" "$rev"
        git -C "$into" checkout -q FETCH_HEAD
    fi
}

if [ -x "$DEST/bin/glslc" ]; then
    echo "$DEST/bin/glslc exists:"
    "$DEST/bin/glslc" --version | head -3
    exit 0
fi
SRC="$DEST/src"
rm -rf "$SRC"
checkout google/shaderc "$SHADERC_TAG" "$SRC"
for dep in "${DEPS[@]}"; do
    set -- $dep
    checkout "$2" "$3" "$SRC/$1"
done

"$CMAKE" -S "$SRC" -B "$DEST/build" -G "Unix Makefiles" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$DEST" \
    -DSHADERC_SKIP_TESTS=ON -DSHADERC_SKIP_EXAMPLES=ON -DSHADERC_SKIP_COPYRIGHT_CHECK=ON \
    -DSPIRV_SKIP_TESTS=ON -DSPIRV_SKIP_EXECUTABLES=ON -DENABLE_GLSLANG_BINARIES=OFF \
    -DSPIRV_WERROR=OFF
"$CMAKE" --build "$DEST/build" --target glslc_exe -j "$JOBS"
mkdir -p "$DEST/bin"
cp "$DEST/build/glslc/glslc" "$DEST/bin/glslc"
"$DEST/bin/glslc" --version | head -3
