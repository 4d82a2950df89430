#!/bin/sh
# cuda/lint.sh: rules that keep the nvcc build and the simulator build (cuda/sim) of the same
# sources honest. Exits non-zero, listing the offending lines, when
#   - inline asm appears outside cuda/ptx_ops.cuh and cuda/sim/ (or an assembler file outside cuda/sim/),
#   - `<<<` appears outside cuda/launch.cuh (launch through LAUNCH(...)),
#   - `extern __shared__` appears outside cuda/launch.cuh (use DYN_SMEM(T, name)),
#   - something defines __CUDA_ARCH__ (use KARCH; a fake __CUDA_ARCH__ breaks NVIDIA's headers).
cd "$(dirname "$0")" || exit 2
status=0
src=$(find . -type f \( -name '*.cu' -o -name '*.cuh' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' \
  -o -name '*.cc' -o -name '*.cpp' \) | sort)

fail() { echo "cuda/lint.sh: $1"; echo "$2" | sed 's/^/  /'; status=1; }

hits=$(for f in $src; do
  case "$f" in ./ptx_ops.cuh|./sim/*) continue ;; esac
  grep -nHE '(^|[^A-Za-z0-9_])(asm|__asm__|__asm)[[:space:]]*((volatile|__volatile__|goto|inline)[[:space:]]*)*[({]' "$f"
done)
[ -n "$hits" ] && fail "inline asm outside cuda/ptx_ops.cuh and cuda/sim/:" "$hits"

hits=$(find . -type f \( -name '*.S' -o -name '*.s' -o -name '*.asm' \) ! -path './sim/*')
[ -n "$hits" ] && fail "assembler files outside cuda/sim/:" "$hits"

hits=$(for f in $src; do
  [ "$f" = ./launch.cuh ] && continue
  grep -nH '<<<' "$f"
done)
[ -n "$hits" ] && fail "'<<<' outside cuda/launch.cuh (use LAUNCH(kernel, grid, block, smem, stream, args...)):" "$hits"

hits=$(for f in $src; do
  [ "$f" = ./launch.cuh ] && continue
  grep -nHE 'extern[[:space:]]+__shared__' "$f"
done)
[ -n "$hits" ] && fail "'extern __shared__' outside cuda/launch.cuh (use DYN_SMEM(T, name)):" "$hits"

hits=$(for f in $src; do grep -nHE '#[[:space:]]*define[[:space:]]+__CUDA_ARCH__' "$f"; done)
[ -n "$hits" ] && fail "__CUDA_ARCH__ defined (use KARCH from cuda/launch.cuh):" "$hits"

[ $status -eq 0 ] && echo "cuda/lint.sh: ok ($(echo "$src" | wc -l) files)"
exit $status
