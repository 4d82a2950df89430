// PTX conformance: every wrapper of cuda/ptx_ops.cuh (and the shuffle width rules) on fixed inputs,
// one output line per lane, compared with the committed golden file tests/ptx_conformance.golden.
// Inputs are chosen so that every result is exact (mma: multiples of 1/4 and 1/16, at most 16
// products), so hardware and simulator must agree bit for bit.
//
//   test_ptx_conformance            compare with the golden file (PTX_GOLDEN or argv[2])
//   test_ptx_conformance --write    (re)write it; its header records where the numbers came from:
//                                   the nvcc build run on a GPU writes "origin: hardware ...".
#include "test_util.cuh"
#include "ptx_ops.cuh"

#include <cstdint>
#include <fstream>
#include <sstream>

enum { MMA_F16 = 0, MMA_BF16 = 128, LDM = 256, CP = LDM + 6 * 128, BITS = CP + 4 * 128, SHFL = BITS + 32 * 10,
       TOTAL = SHFL + 32 * 6 };

__global__ void k_conformance(const uint16_t *A, const uint16_t *B, const uint16_t *Abf, const uint16_t *Bbf,
                              const float *C, const unsigned char *src, const uint32_t *words, uint32_t *out) {
  __shared__ __align__(16) uint16_t sA[16 * 16];
  __shared__ __align__(16) uint16_t sB[16 * 8];
  __shared__ __align__(16) uint16_t sl[32 * 24];
  __shared__ __align__(16) unsigned char cp[4][512];
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3, j = lane / 8, r = lane % 8;
  // mma via ldmatrix (f16 then bf16)
  for (int pass = 0; pass < 2; pass++) {
    const uint16_t *a = pass ? Abf : A, *b = pass ? Bbf : B;
    for (int i = lane; i < 256; i += 32) sA[i] = a[i];
    for (int i = lane; i < 128; i += 32) sB[i] = b[i];
    __syncwarp();
    uint32_t fa[4], fb[2];
    float d[4];
    ldmatrix_x4(fa, &sA[(r + 8 * (j & 1)) * 16 + 8 * (j >> 1)]);
    ldmatrix_x2_trans(fb, &sB[(r + 8 * (j & 1)) * 8]);
    for (int i = 0; i < 4; i++) d[i] = C[(g + 8 * (i >= 2)) * 8 + 2 * t + (i & 1)];
    if (pass) mma_m16n8k16_bf16f32(d, fa, fb, d);
    else mma_m16n8k16_f16f32(d, fa, fb, d);
    for (int i = 0; i < 4; i++) out[(pass ? MMA_BF16 : MMA_F16) + lane * 4 + i] = __float_as_uint(d[i]);
    __syncwarp();
  }
  // ldmatrix: matrix jj's row rr at smem row 8jj + 3rr % 8, value 64jj + 8rr + c + 1
  for (int i = lane; i < 32 * 24; i += 32) sl[i] = 0xdead;
  __syncwarp();
  for (int e = lane; e < 256; e += 32) {
    int jj = e / 64, rr = e / 8 % 8, c = e % 8;
    sl[(jj * 8 + (rr * 3) % 8) * 24 + 8 + c] = (uint16_t)(jj * 64 + rr * 8 + c + 1);
  }
  __syncwarp();
  const uint16_t *row = &sl[(j * 8 + (r * 3) % 8) * 24 + 8];
  uint32_t r1, r2[2], r4[4];
  uint32_t *o = out + LDM + lane * 4;
  ldmatrix_x1(r1, row);       o[0] = r1;
  ldmatrix_x2(r2, row);       o[128] = r2[0]; o[129] = r2[1];
  ldmatrix_x4(r4, row);       for (int k = 0; k < 4; k++) o[256 + k] = r4[k];
  ldmatrix_x1_trans(r1, row); o[384] = r1;
  ldmatrix_x2_trans(r2, row); o[512] = r2[0]; o[513] = r2[1];
  ldmatrix_x4_trans(r4, row); for (int k = 0; k < 4; k++) o[640 + k] = r4[k];
  // cp.async: ca 4/8/16 and cg 16 with src-size lane % (size + 1); 0xAB marks bytes never written
  for (int i = lane; i < 4 * 512; i += 32) cp[i / 512][i % 512] = 0xab;
  __syncwarp();
  cp_async_ca<4>(&cp[0][lane * 16], src + lane * 16, lane % 5);
  cp_async_ca<8>(&cp[1][lane * 16], src + 512 + lane * 16, lane % 9);
  cp_async_commit();
  cp_async_ca<16>(&cp[2][lane * 16], src + 1024 + lane * 16, lane % 17);
  cp_async_commit();
  cp_async_cg16(&cp[3][lane * 16], src + 1536 + lane * 16, 16 - lane % 17);
  cp_async_wait<1>();
  cp_async_wait_all();
  __syncwarp();
  for (int k = 0; k < 4; k++) {
    const uint32_t *w = reinterpret_cast<const uint32_t *>(&cp[k][lane * 16]);
    for (int q = 0; q < 4; q++) out[CP + k * 128 + lane * 4 + q] = w[q];
  }
  // lop3 / prmt
  uint32_t x = words[lane], y = words[32 + lane], z = words[64 + lane];
  uint32_t *b = out + BITS + lane * 10;
  b[0] = lop3<0x96>(x, y, z); b[1] = lop3<0xE8>(x, y, z); b[2] = lop3<0xCA>(x, y, z); b[3] = lop3<0x1E>(x, y, z);
  b[4] = lop3<0x01>(x, y, z);
  b[5] = prmt(x, y, 0x5410); b[6] = prmt(x, y, 0x3276); b[7] = prmt(x, y, z & 0xffff);
  b[8] = prmt(x, y, 0x8888 | (z & 0x7777)); b[9] = prmt(x, y, 0x0123);
  // shuffles with widths: the segment rules
  uint32_t v = 1000 + lane;
  uint32_t *s = out + SHFL + lane * 6;
  s[0] = __shfl_sync(0xffffffffu, v, (int)(words[96 + lane] % 64) - 20, 8);
  s[1] = __shfl_up_sync(0xffffffffu, v, 3, 16);
  s[2] = __shfl_down_sync(0xffffffffu, v, 5, 8);
  s[3] = __shfl_xor_sync(0xffffffffu, v, 9, 16);
  s[4] = __shfl_xor_sync(0xffffffffu, v, 6, 4);  // lane mask >= width: earlier groups only
  s[5] = __ballot_sync(0xffffffffu, words[lane] & 1);
}

static uint16_t bits16(float f, bool bf) {
  uint16_t u;
  if (bf) { __nv_bfloat16 h = __float2bfloat16(f); memcpy(&u, (const void *)&h, 2); }
  else { __half h = __float2half(f); memcpy(&u, (const void *)&h, 2); }
  return u;
}

static std::vector<std::string> run() {
  Rng rng(2024);
  std::vector<uint16_t> A(256), B(128), Abf(256), Bbf(128);
  std::vector<float> C(128);
  for (int i = 0; i < 256; i++) { float v = rng.range(-8, 8) / 4.0f; A[i] = bits16(v, false); Abf[i] = bits16(v, true); }
  for (int i = 0; i < 128; i++) { float v = rng.range(-8, 8) / 4.0f; B[i] = bits16(v, false); Bbf[i] = bits16(v, true); }
  for (float &c : C) c = rng.range(-64, 64) / 16.0f;
  std::vector<unsigned char> src(2048);
  for (int i = 0; i < 2048; i++) src[i] = (unsigned char)(i * 7 + 3);
  std::vector<uint32_t> words(128);
  for (uint32_t &w : words) w = rng.next() * 2654435761u ^ (rng.next() << 7);
  uint16_t *dA = to_dev(A), *dB = to_dev(B), *dAbf = to_dev(Abf), *dBbf = to_dev(Bbf);
  float *dC = to_dev(C);
  unsigned char *dsrc = to_dev(src);
  uint32_t *dw = to_dev(words), *dout = dev_alloc<uint32_t>(TOTAL);
  CUDA_OK(cudaMemset(dout, 0, TOTAL * 4));
  LAUNCH(k_conformance, 1, 32, 0, 0, dA, dB, dAbf, dBbf, dC, dsrc, dw, dout);
  KERNEL_OK();
  std::vector<uint32_t> h = to_host(dout, TOTAL);
  std::vector<std::string> lines;
  auto emit = [&](const char *name, int base, int per_lane) {
    for (int l = 0; l < 32; l++) {
      std::string s = std::string(name) + " " + std::to_string(l);
      for (int k = 0; k < per_lane; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, " %08x", h[base + l * per_lane + k]);
        s += buf;
      }
      lines.push_back(s);
    }
  };
  emit("mma.f16", MMA_F16, 4);
  emit("mma.bf16", MMA_BF16, 4);
  const char *ld[] = {"ldmatrix.x1", "ldmatrix.x2", "ldmatrix.x4", "ldmatrix.x1.trans", "ldmatrix.x2.trans", "ldmatrix.x4.trans"};
  for (int v = 0; v < 6; v++) {
    for (int l = 0; l < 32; l++) {  // only the registers the variant writes
      int nmat = 1 << (v % 3);
      std::string s = std::string(ld[v]) + " " + std::to_string(l);
      for (int k = 0; k < nmat; k++) {
        char buf[16];
        snprintf(buf, sizeof buf, " %08x", h[LDM + v * 128 + l * 4 + k]);
        s += buf;
      }
      lines.push_back(s);
    }
  }
  const char *cpn[] = {"cp.async.ca4", "cp.async.ca8", "cp.async.ca16", "cp.async.cg16"};
  for (int k = 0; k < 4; k++) emit(cpn[k], CP + k * 128, 4);
  emit("lop3.prmt", BITS, 10);
  emit("shfl", SHFL, 6);
  cudaFree(dA); cudaFree(dB); cudaFree(dAbf); cudaFree(dBbf); cudaFree(dC); cudaFree(dsrc); cudaFree(dw); cudaFree(dout);
  return lines;
}

static std::string origin() {
#ifdef CUSIM
  return "fp64 reference (the cusim simulator's wrappers); regenerate on a GPU: gpu_test_ptx_conformance --write";
#else
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, 0);
  int rt = 0, drv = 0;
  cudaRuntimeGetVersion(&rt);
  cudaDriverGetVersion(&drv);
  char buf[512];
  snprintf(buf, sizeof buf, "hardware: %s (sm_%d%d), nvcc build, CUDA runtime %d, driver %d", p.name, p.major, p.minor,
           rt, drv);
  return buf;
#endif
}

int main(int argc, char **argv) {
  require_device();
  bool write = argc > 1 && std::string(argv[1]) == "--write";
  std::string path = argc > 2 ? argv[2] : PTX_GOLDEN;
  std::vector<std::string> got = run();
  if (write) {
    std::ofstream f(path);
    f << "# PTX conformance golden: output of cuda/tests/test_ptx_conformance.cu (one line per lane, hex words)\n";
    f << "# origin: " << origin() << "\n";
    for (auto &l : got) f << l << "\n";
    printf("wrote %zu lines to %s (origin: %s)\n", got.size(), path.c_str(), origin().c_str());
    return f.good() ? 0 : 1;
  }
  std::ifstream f(path);
  CHECKF(f.good(), "cannot read %s", path.c_str());
  std::vector<std::string> want;
  std::string line, org;
  while (std::getline(f, line)) {
    if (line.rfind("# origin: ", 0) == 0) org = line.substr(10);
    if (!line.empty() && line[0] != '#') want.push_back(line);
  }
  printf("golden %s\n  origin: %s\n", path.c_str(), org.c_str());
  CHECKF(want.size() == got.size(), "golden has %zu lines, this run %zu", want.size(), got.size());
  int shown = 0, bad = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); i++)
    if (got[i] != want[i]) {
      bad++;
      if (shown++ < 10) fprintf(stderr, "  golden: %s\n  got:    %s\n", want[i].c_str(), got[i].c_str());
    }
  CHECKF(bad == 0, "%d lines differ from the golden file", bad);
  return test_summary("test_ptx_conformance");
}
