#!/usr/bin/env bash
# libllmrt.so must not depend on MPI: MPI lives in the run-time module libllmrt_mpi.so (opened with
# dlopen by host/exec/comm/comm_mpi_loader.c). Fails when the library has a NEEDED entry matching
# libmpi or an undefined MPI_ symbol; when the module was built (OpenMPI found), also checks that it
# is the one linked with libmpi and that it exports its entry point.
# usage: test_no_libmpi.sh LIBLLMRT_SO [LIBLLMRT_MPI_SO]
set -euo pipefail
lib=$1 module=${2:-}
fail() { echo "FAIL: $*"; exit 1; }

needed=$(readelf -d "$lib" | awk '/\(NEEDED\)/ {print $NF}')
echo "$lib NEEDED: $(echo $needed)"
if echo "$needed" | grep -qi 'libmpi'; then fail "$lib needs libmpi"; fi
if nm -D --undefined-only "$lib" | grep -q ' MPI_'; then
    fail "$lib has undefined MPI symbols: $(nm -D --undefined-only "$lib" | grep ' MPI_' | head -3)"
fi

if [ -n "$module" ]; then
    [ -f "$module" ] || fail "the MPI module $module was not built"
    readelf -d "$module" | grep '(NEEDED)' | grep -qi 'libmpi' || fail "$module does not need libmpi"
    nm -D --defined-only "$module" | grep -q ' llmrt_mpi_module_v1$' ||
        fail "$module does not export llmrt_mpi_module_v1"
    # nothing of libllmrt is left for the module to find: it links nothing of it
    if nm -D --undefined-only "$module" | grep -q ' llmrt_'; then
        fail "$module has undefined llmrt_ symbols: $(nm -D --undefined-only "$module" | grep ' llmrt_')"
    fi
    echo "$module: needs libmpi, exports llmrt_mpi_module_v1"
fi
echo "ok"
