// Standard normal noise for the Bayesian layers, float32 on the CPU, and LRT's
// activation draws mean + sqrt(var) * noise in the same pass (normal_sample).
//
// Counter-based: the uniform bits come from Philox4x32-10 (Salmon et al. 2011,
// "Parallel random numbers: as easy as 1, 2, 3"), keyed by the seed, with the
// counter = offset + the block's index; each block of 128 bits gives four normals
// by the Box-Muller transform. So a draw is a pure function of (seed, offset,
// size): the same numbers whatever the thread count, and no state to share
// between threads. The caller advances the offset by ceil(size / 4) per draw.
//
// Box-Muller with u1 = (r + 1/2) 2^-32 from 32 bits: radii up to
// sqrt(2 ln 2^33) = 6.8, i.e. |z| is cut at 6.8 sigma (probability 1e-11).
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"
#include "vector_math.h"

namespace {

using namespace bbb;

constexpr int64_t kNormalsPerBlock = 4;

// One Philox4x32 block: ten rounds of two 32x32 -> 64-bit products and xors.
inline void philox4x32_10(uint32_t& x0, uint32_t& x1, uint32_t& x2, uint32_t& x3, uint32_t k0, uint32_t k1) {
#pragma GCC unroll 10
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * x0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * x2;
    const uint32_t y0 = static_cast<uint32_t>(p1 >> 32) ^ x1 ^ k0;
    const uint32_t y2 = static_cast<uint32_t>(p0 >> 32) ^ x3 ^ k1;
    x1 = static_cast<uint32_t>(p1);
    x3 = static_cast<uint32_t>(p0);
    x0 = y0;
    x2 = y2;
    k0 += 0x9E3779B9u;  // the Weyl key schedule
    k1 += 0xBB67AE85u;
  }
}

// sin and cos of 2 pi u for u in [0, 1]: a quarter turn picked by rounding 4u,
// the rest (within +-pi/4) by Cephes' single-precision polynomials.
inline void sincos_turns(float u, float& s, float& c) {
  const float t = 4.0f * u;
  const int32_t quarter = static_cast<int32_t>(t + 0.5f);
  const float a = (t - static_cast<float>(quarter)) * 1.57079632679489662f;
  const float z = a * a;
  const float sin_a = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * a + a;
  const float cos_a = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
  const bool odd = quarter & 1;  // sin(a + q pi/2), cos(a + q pi/2) for q = 0..3
  const float x = odd ? cos_a : sin_a;
  const float y = odd ? sin_a : cos_a;
  s = (quarter & 2) ? -x : x;
  c = ((quarter + 1) & 2) ? -y : y;
}

// Two normals from two 32-bit uniforms.
inline void box_muller(uint32_t r_radius, uint32_t r_angle, float& z0, float& z1) {
  const float u1 = static_cast<float>(r_radius) * 2.3283064365386963e-10f + 1.1641532182693481e-10f;  // (r + 1/2) 2^-32
  const float radius = std::sqrt(-2.0f * fast_log(u1));
  float s, c;
  sincos_turns(static_cast<float>(r_angle) * 2.3283064365386963e-10f, s, c);
  z0 = radius * c;
  z1 = radius * s;
}

// Blocks first, first + 1, ... of a draw into o[0 .. n): block b writes
// o[b + k q] (k = 0..3), so that consecutive blocks fill consecutive elements and
// the loop vectorizes. kTail: n < 4 q, some of the last blocks' normals unused
// (the draw's last chunk only; the checks would stop the loop vectorizing).
template <bool kTail>
void NormalBlocks(uint32_t k0, uint32_t k1, uint64_t first, float* o, int64_t q, int64_t n) {
#pragma omp simd
  for (int64_t b = 0; b < q; ++b) {
    const uint64_t counter = first + static_cast<uint64_t>(b);
    uint32_t x0 = static_cast<uint32_t>(counter), x1 = static_cast<uint32_t>(counter >> 32), x2 = 0, x3 = 0;
    philox4x32_10(x0, x1, x2, x3, k0, k1);
    float z0, z1, z2, z3;
    box_muller(x0, x1, z0, z1);
    box_muller(x2, x3, z2, z3);
    o[b] = z0;
    if (!kTail || b + q < n) o[b + q] = z1;
    if (!kTail || b + 2 * q < n) o[b + 2 * q] = z2;
    if (!kTail || b + 3 * q < n) o[b + 3 * q] = z3;
  }
}

// Elements [begin, end) of a draw: blocks from begin / 4 on.
void NormalChunk(uint64_t seed, uint64_t offset, float* out, int64_t begin, int64_t end) {
  const int64_t n = end - begin;
  const int64_t q = (n + kNormalsPerBlock - 1) / kNormalsPerBlock;
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint64_t first = offset + static_cast<uint64_t>(begin / kNormalsPerBlock);
  (n == kNormalsPerBlock * q ? NormalBlocks<false> : NormalBlocks<true>)(k0, k1, first, out + begin, q, n);
}

}  // namespace

std::vector<paddle::Tensor> StandardNormal(const paddle::Tensor& like, int64_t seed, int64_t offset, int threads) {
  auto out = paddle::empty(like.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int64_t n = like.numel();
  float* data = out.data<float>();
  ParallelChunks((n + kChunk - 1) / kChunk, threads, [&](int64_t c) {
    NormalChunk(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), data, c * kChunk, std::min(n, (c + 1) * kChunk));
  });
  return {out};
}

std::vector<std::vector<int64_t>> LikeShape(const std::vector<int64_t>& like_shape) { return {like_shape}; }

std::vector<paddle::DataType> LikeDtype(const paddle::DataType&) { return {paddle::DataType::FLOAT32}; }

PD_BUILD_OP(bbb_standard_normal)
    .Inputs({"Like"})
    .Outputs({"Out"})
    .Attrs({"seed: int64_t", "offset: int64_t", "threads: int"})
    .SetKernelFn(PD_KERNEL(StandardNormal))
    .SetInferShapeFn(PD_INFER_SHAPE(LikeShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(LikeDtype));

// LRT's activations: out = mean + sqrt(var + var_eps) eps, with eps the draw that
// standard_normal(mean, seed, offset) gives; eps is an output too, for the backward:
//   grad_mean = grad_out,  grad_var = grad_out eps / (2 sqrt(var + var_eps)).
std::vector<paddle::Tensor> NormalSample(const paddle::Tensor& mean, const paddle::Tensor& var, int64_t seed, int64_t offset, float var_eps, int threads) {
  check(mean, "mean");
  check(var, "var");
  PD_CHECK(mean.numel() == var.numel(), "mean and var must have the same number of elements");
  auto out = paddle::empty(mean.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto eps = paddle::empty(mean.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int64_t n = mean.numel();
  const float *m = mean.data<float>(), *v = var.data<float>();
  float *o = out.data<float>(), *e = eps.data<float>();
  ParallelChunks((n + kChunk - 1) / kChunk, threads, [&](int64_t c) {
    const int64_t begin = c * kChunk, end = std::min(n, (c + 1) * kChunk);
    NormalChunk(static_cast<uint64_t>(seed), static_cast<uint64_t>(offset), e, begin, end);
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) o[i] = m[i] + std::sqrt(v[i] + var_eps) * e[i];
  });
  return {out, eps};
}

std::vector<paddle::Tensor> NormalSampleBackward(const paddle::Tensor& var, const paddle::Tensor& eps, const paddle::Tensor& grad_out, float var_eps,
                                                 int threads) {
  auto grad_mean = paddle::empty(var.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_var = paddle::empty(var.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int64_t n = var.numel();
  const float *v = var.data<float>(), *e = eps.data<float>(), *g = grad_out.data<float>();
  float *gm = grad_mean.data<float>(), *gv = grad_var.data<float>();
  ParallelChunks((n + kChunk - 1) / kChunk, threads, [&](int64_t c) {
    const int64_t begin = c * kChunk, end = std::min(n, (c + 1) * kChunk);
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
      gm[i] = g[i];
      gv[i] = g[i] * e[i] * 0.5f / std::sqrt(v[i] + var_eps);
    }
  });
  return {grad_mean, grad_var};
}

std::vector<std::vector<int64_t>> SampleShape(const std::vector<int64_t>& mean_shape, const std::vector<int64_t>&) { return {mean_shape, mean_shape}; }

std::vector<paddle::DataType> SampleDtype(const paddle::DataType&, const paddle::DataType&) { return {paddle::DataType::FLOAT32, paddle::DataType::FLOAT32}; }

PD_BUILD_OP(bbb_normal_sample)
    .Inputs({"Mean", "Var"})
    .Outputs({"Out", "Eps"})
    .Attrs({"seed: int64_t", "offset: int64_t", "var_eps: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(NormalSample))
    .SetInferShapeFn(PD_INFER_SHAPE(SampleShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(SampleDtype));

PD_BUILD_GRAD_OP(bbb_normal_sample)
    .Inputs({"Var", "Eps", paddle::Grad("Out")})
    .Outputs({paddle::Grad("Mean"), paddle::Grad("Var")})
    .Attrs({"var_eps: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(NormalSampleBackward));
