// launch.cuh: the one place where kernels are launched and dynamic shared memory is declared, so
// that the same source compiles with nvcc and under the simulator (cuda/sim, -DCUSIM).
//
//   LAUNCH(kernel, grid, block, smem_bytes, stream, args...);   then cudaGetLastError()
//   DYN_SMEM(T, name);      // T *name = the block's dynamic shared memory (16-byte aligned)
//   KARCH                   // the target architecture (800, 900, ...) in device code; use it
//                           // instead of __CUDA_ARCH__, which must never be defined under cusim
//
// A template kernel whose argument list has a comma goes in parentheses (nvcc accepts them):
//   LAUNCH((my_kernel<float, 4>), grid, block, 0, stream, ...);
#ifndef LLMRT_LAUNCH_CUH
#define LLMRT_LAUNCH_CUH

#include <cuda_runtime.h>

#ifdef CUSIM
#define LAUNCH(kernel, grid, block, smem, stream, ...) \
  ((void)::cusim::launch(#kernel, __FILE__, __LINE__, kernel, dim3(grid), dim3(block), (size_t)(smem), (stream), ##__VA_ARGS__))
#define DYN_SMEM(T, name) T *name = reinterpret_cast<T *>(::cusim::g_dyn_smem)
#ifndef KARCH
#define KARCH 800
#endif
#else
#define LAUNCH(kernel, grid, block, smem, stream, ...) \
  kernel<<<dim3(grid), dim3(block), (size_t)(smem), (stream)>>>(__VA_ARGS__)
#define DYN_SMEM(T, name)                                              \
  extern __shared__ __align__(16) unsigned char llmrt_dyn_smem_[];     \
  T *name = reinterpret_cast<T *>(llmrt_dyn_smem_)
#ifdef __CUDA_ARCH__
#define KARCH __CUDA_ARCH__
#else
#define KARCH 0
#endif
#endif

#endif  // LLMRT_LAUNCH_CUH
