#!/usr/bin/env bash
# Installs a build tree into a temporary prefix and builds programs against the installed tree only:
#   1. the layout: libllmrt.so with its SONAME, libllmrt.a, every header of include/, the llmrt
#      command, llmrt.pc, the CMake package (and libllmrt_mpi.so when the build has it);
#   2. consumer.c through pkg-config (shared library, run with LD_LIBRARY_PATH at the installed
#      lib), and through pkg-config --static against libllmrt.a;
#   3. a CMake project (consumer/) with find_package(llmrt): llmrt::llmrt and llmrt::llmrt_static;
#      a request for another major version is refused (SameMajorVersion);
#   4. the installed llmrt command, and (with the MPI module and mpirun) a 2-process tensor-parallel
#      run of it, which finds the module through the installed bin/ -> lib/ path only.
# Nothing installed may point back into the source or build tree.
# A CUDA build installs no static library (its kernels' objects are not packaged): with
# LLMRT_INSTALL_NO_STATIC=1 the static checks are left out.
# usage: test_install.sh BUILD_DIR MODEL [MPIEXEC]
set -euo pipefail
build=$(cd "$1" && pwd) model=$2 mpiexec=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmrt_install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
static=1
[ "${LLMRT_INSTALL_NO_STATIC:-0}" = 1 ] && static=0
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "--- $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
pc=$(find "$prefix" -name llmrt.pc)
[ -n "$pc" ] || fail "no llmrt.pc installed"
libdir=$(dirname "$(dirname "$pc")")
echo "libdir: $libdir"

step "layout"
[ $static = 0 ] || [ -e "$libdir/libllmrt.a" ] || fail "libllmrt.a not installed"
for f in "$libdir/libllmrt.so" "$prefix/bin/llmrt" \
         "$libdir/cmake/llmrt/llmrtConfig.cmake" "$libdir/cmake/llmrt/llmrtConfigVersion.cmake" \
         "$libdir/cmake/llmrt/llmrtTargets.cmake"; do
    [ -e "$f" ] || fail "$f not installed"
done
for h in "$src"/include/*.h; do
    if [ "$(basename "$h")" = llmrt_test_hooks.h ]; then # llmrt's own tests only: never installed
        [ ! -e "$prefix/include/llmrt_test_hooks.h" ] || fail "llmrt_test_hooks.h was installed"
        continue
    fi
    cmp -s "$h" "$prefix/include/$(basename "$h")" || fail "include/$(basename "$h") not installed"
done
soname=$(readelf -d "$libdir/libllmrt.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] && [ -e "$libdir/$soname" ] || fail "libllmrt.so: SONAME '$soname' missing"
echo "SONAME $soname"
if [ -e "$build/libllmrt_mpi.so" ]; then
    [ -e "$libdir/libllmrt_mpi.so" ] || fail "libllmrt_mpi.so not installed"
fi
if grep -rlI -e "$src" -e "$build" "$libdir/cmake" "$libdir/pkgconfig"; then
    fail "installed package files name the source or build tree"
fi
for f in "$libdir/libllmrt.so" "$prefix/bin/llmrt"; do
    if readelf -d "$f" | grep -E 'R(UN)?PATH' | grep -q -e "$build" -e "$src"; then
        fail "$f keeps a build-tree RUNPATH"
    fi
done

export PKG_CONFIG_PATH="$libdir/pkgconfig"
unset LD_LIBRARY_PATH || true
step "pkg-config (shared): $(pkg-config --cflags --libs llmrt)"
cc -std=c11 -Wall -Werror -o "$tmp/consumer_pc" "$here/consumer.c" $(pkg-config --cflags --libs llmrt)
readelf -d "$tmp/consumer_pc" | grep -q "\[$soname\]" || fail "consumer_pc does not need $soname"
LD_LIBRARY_PATH="$libdir" "$tmp/consumer_pc" "$model"
resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$tmp/consumer_pc" | awk -v s="$soname" '$1 == s {print $3}')
[ "$(cd "$(dirname "$resolved")" && pwd)" = "$(cd "$libdir" && pwd)" ] ||
    fail "consumer_pc ran with $resolved, not the installed library"

if [ $static = 1 ]; then
    static_libs=$(pkg-config --static --libs llmrt)
    step "pkg-config --static: $static_libs"
    # -l:libllmrt.a: the archive, not the shared library beside it
    cc -std=c11 -Wall -Werror -o "$tmp/consumer_pc_static" "$here/consumer.c" $(pkg-config --cflags llmrt) \
        $(echo "$static_libs" | sed 's/-lllmrt\b/-l:libllmrt.a/')
    if readelf -d "$tmp/consumer_pc_static" | grep -q 'libllmrt'; then fail "consumer_pc_static needs libllmrt.so"; fi
    "$tmp/consumer_pc_static" "$model"
fi

step "find_package(llmrt) (CMake)"
cmake -S "$here/consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=Release > "$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "configure"; }
cmake --build "$tmp/cmake-build" > "$tmp/cmake-build.log" 2>&1 || { cat "$tmp/cmake-build.log"; fail "build"; }
LD_LIBRARY_PATH="$libdir" "$tmp/cmake-build/consumer_shared" "$model"
if [ $static = 1 ]; then
    [ -x "$tmp/cmake-build/consumer_static" ] || fail "llmrt::llmrt_static missing from the CMake package"
    "$tmp/cmake-build/consumer_static" "$model"
fi
if cmake -S "$here/consumer" -B "$tmp/cmake-build-v1" -DCMAKE_PREFIX_PATH="$prefix" \
       -DLLMRT_WANT_VERSION=1.0 > "$tmp/cmake-v1.log" 2>&1; then
    fail "find_package(llmrt 1.0) accepted version $(sed -n 's/^Version: //p' "$pc")"
fi
echo "find_package(llmrt 1.0) refused (SameMajorVersion)"

step "installed llmrt command"
"$prefix/bin/llmrt" --version
"$prefix/bin/llmrt" generate -m "$model" --tokens 1,5,9,12 -n 4 --ignore-eos --temperature 0 -t 1 \
    > /dev/null 2> "$tmp/cli.err" || { cat "$tmp/cli.err"; fail "installed llmrt generate"; }

if [ -n "$mpiexec" ] && [ -e "$libdir/libllmrt_mpi.so" ]; then
    step "installed llmrt under $mpiexec -np 2 (the MPI module from $libdir)"
    OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 \
        "$mpiexec" --oversubscribe --allow-run-as-root -np 2 \
        "$prefix/bin/llmrt" generate --tp 2 --device cpu -t 1 -m "$model" --tokens 1,5,9,12 -n 4 \
        --ignore-eos --temperature 0 > "$tmp/mpi.out" 2> "$tmp/mpi.err" ||
        { cat "$tmp/mpi.err"; fail "mpirun of the installed llmrt"; }
    grep -q 'generation 4 tokens' "$tmp/mpi.err" || { cat "$tmp/mpi.err"; fail "mpirun: no generation"; }
    grep -v 'running on the CPU' "$tmp/mpi.err" || true
fi
echo "ok"
