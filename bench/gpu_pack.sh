#!/usr/bin/env bash
# Builds the CUDA binaries the GPU suite needs on a machine WITHOUT a GPU (nvcc only) and packs
# them, so that a GPU lent for minutes spends none of them compiling (bench/gpu_suite.sh).
#
#   bench/gpu_pack.sh [ARCHS]     ARCHS: CMAKE_CUDA_ARCHITECTURES, default 90 (H100/H200)
#
# Writes .gpu/ in the repository root (add `/.gpu/` to .git/info/exclude): build.tar.xz (the
# llmrt command, the libraries and every test of `ctest -L gpu` with its CTestTestfile.cmake, from
# build-gpu/), lib/ (the non-CUDA shared libraries they load: cJSON, PCRE2, in case the GPU
# machine has none) and SOURCE_DIR (the absolute path the build refers to: CTest files and test
# data paths are absolute, so gpu_suite.sh links that path to its own checkout when they differ).
# The build leaves out libmicrohttpd, libcurl and MPI (`llmrt serve`, `bench serve --base-url`,
# multi-process TP): the suite needs none of them, and fewer libraries travel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
archs=${1:-90}
build=$root/build-gpu
pack=$root/.gpu
rm -rf "$build" # a fresh configure: a cached libmicrohttpd/MPI of an earlier one would stay
mkdir -p "$build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLMRT_CUDA=nvcc \
    -DCMAKE_CUDA_ARCHITECTURES="$archs" -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON \
    -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON > "$build/configure.log" 2>&1 ||
    { tail -30 "$build/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 || { tail -50 "$build/build.log"; exit 1; }

rm -rf "$pack"
mkdir -p "$pack/lib"
# every executable `ctest -L gpu` runs, relative to the build directory
mapfile -t tests < <(ctest --test-dir "$build" -N -V -L gpu | sed -n 's/^[0-9]*: Test command: //p' |
    awk '{print $1}' | tr -d '"' | sed -n "s|^$build/||p" | sort -u)
mapfile -t ctestfiles < <(cd "$build" && find . -name CTestTestfile.cmake | sed 's|^\./||')
(cd "$build" && tar -cJf "$pack/build.tar.xz" llmrt libllmrt.so* "${tests[@]}" "${ctestfiles[@]}")
for lib in $(ldd "$build/llmrt" | awk '/=> \//{print $3}' | grep -E 'libcjson|libpcre2'); do
    cp -L "$lib" "$pack/lib/"
done
echo "$root" > "$pack/SOURCE_DIR"
git -C "$root" rev-parse --short HEAD > "$pack/GIT_REV"
grep -q '^/.gpu/' "$root/.git/info/exclude" 2>/dev/null ||
    { mkdir -p "$root/.git/info"; echo '/.gpu/' >> "$root/.git/info/exclude"; }
echo "packed ${#tests[@]} test binaries for sm_$archs: $(du -sh "$pack" | cut -f1) in $pack"
