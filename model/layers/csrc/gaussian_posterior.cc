// Fused Gaussian posterior for Bayes by Backprop, float32 on the CPU: softplus
// and the KL against a Gaussian prior (closed form) or a scale-mixture prior
// (Monte-Carlo estimate) in one pass, forward and backward.
//
// Forward, one vectorized (and, with threads > 1, OpenMP-parallel) pass over mu
// and rho of any shape:
//   sigma = softplus(rho)   (rho itself above 20, like paddle's softplus; below,
//                            log1p(e^rho), which stays accurate for very negative
//                            rho, where paddle's float32 log(1 + e^rho) rounds to 0)
//   kl    = sum_i log(prior_sigma / sigma_i)
//               + (sigma_i^2 + (mu_i - prior_mu)^2) / (2 prior_sigma^2) - 1/2
// i.e. KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2)), accumulated in double.
// Backward, one pass too:
//   grad_rho = (grad_sigma + grad_kl (sigma / prior_sigma^2 - 1 / sigma)) sigmoid(rho)
//   grad_mu  = grad_kl (mu - prior_mu) / prior_sigma^2
// Replaces some ten single-threaded elementwise kernels (and their gradients).
// `threads` OpenMP threads share tensors of kParallelFrom elements or more.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

namespace {

// exp and log as polynomials (Cephes' single-precision ones, within a couple of
// ulp), branch-free so that the loops below vectorize: the libm calls would not.
// (__builtin_bit_cast: GCC 11, Clang 9; an older compiler fails the build, and
// fused.py then falls back to the Paddle operators.)

inline float as_float(int32_t i) { return __builtin_bit_cast(float, i); }

inline int32_t as_int(float f) { return __builtin_bit_cast(int32_t, f); }

inline float pow2(int32_t k) { return as_float(static_cast<int32_t>(static_cast<uint32_t>(k + 127) << 23)); }  // -126 <= k <= 127

inline float fast_exp(float x) {
  x = x < -103.0f ? -103.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f;
  const int32_t n = static_cast<int32_t>(t + (t >= 0.0f ? 0.5f : -0.5f));  // round to nearest
  const float nf = static_cast<float>(n);
  const float r = (x - nf * 0.693359375f) + nf * 2.12194440e-4f;  // x - n log(2) in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // times 2^n as 2^a 2^b, both normal floats even where e^x is subnormal
  const int32_t a = n / 2;
  return p * pow2(a) * pow2(n - a);
}

inline float fast_log(float x) {  // x > 0 and normal
  const int32_t bits = as_int(x);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
  float m = as_float((bits & 0x007fffff) | 0x3f000000);  // x = m 2^e, m in [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1.0f : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
  return m + y + 0.693359375f * e;
}

constexpr float kThreshold = 20.0f;  // paddle.nn.functional.softplus's default

// softplus(r) = log(1 + e^r): r above the threshold, e^r below -20 (where
// log1p(e^r) = e^r to float precision), log1p(e^r) between, as
// log(u) e^r / (u - 1) with u = 1 + e^r (exact where u rounds to 1 too).
// Also gives log(softplus(r)), which is r below -20.
struct Softplus {
  float sigma, log_sigma;
};

inline Softplus softplus_and_log(float r) {
  const float e = fast_exp(r);
  const float u = 1.0f + e;
  const float log1p_e = u == 1.0f ? e : fast_log(u) * (e / (u - 1.0f));
  const float sigma = r > kThreshold ? r : (r < -kThreshold ? e : log1p_e);
  return {sigma, r < -kThreshold ? r : fast_log(sigma)};
}

// Exactly 1 above the threshold too, as softplus's gradient is there: e^-20 < 2^-24.
inline float sigmoid(float r) { return 1.0f / (1.0f + fast_exp(-r)); }

constexpr int64_t kParallelFrom = 1 << 15;  // smaller tensors: one thread, no start-up cost
constexpr int64_t kChunk = 1 << 13;  // dynamic chunks: a thread slowed by other processes does fewer

void check(const paddle::Tensor& t, const char* name) {
  PD_CHECK(t.is_cpu(), name, " must be on the CPU");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, name, " must be float32");
}

}  // namespace

std::vector<paddle::Tensor> GaussianPosteriorForward(const paddle::Tensor& mu, const paddle::Tensor& rho, float prior_mu, float prior_sigma, int threads) {
  check(mu, "mu");
  check(rho, "rho");
  PD_CHECK(mu.numel() == rho.numel(), "mu and rho must have the same number of elements");
  auto sigma = paddle::empty(rho.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto kl = paddle::empty({}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* m = mu.data<float>();
  const float* r = rho.data<float>();
  float* s = sigma.data<float>();
  const int64_t n = rho.numel();
  const float half_inv_var = 0.5f / (prior_sigma * prior_sigma);
  // One partial sum per fixed chunk, added up in order: the KL is the same
  // number whatever the thread count and however the chunks were shared out.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (n >= kParallelFrom)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double chunk_sum = 0.0;
#pragma omp simd reduction(+ : chunk_sum)
    for (int64_t i = c * kChunk; i < end; ++i) {
      const Softplus sp = softplus_and_log(r[i]);
      const float d = m[i] - prior_mu;
      s[i] = sp.sigma;
      chunk_sum += static_cast<double>((sp.sigma * sp.sigma + d * d) * half_inv_var - sp.log_sigma);
    }
    partial[c] = chunk_sum;
  }
  double sum = static_cast<double>(n) * (std::log(static_cast<double>(prior_sigma)) - 0.5);
  for (const double p : partial) sum += p;
  kl.data<float>()[0] = static_cast<float>(sum);
  return {sigma, kl};
}

// The backward loop; a template so that it vectorizes both with a gradient for
// sigma and without (none reaches sigma when nothing downstream used it).
template <bool kHasGradSigma>
void BackwardPass(const float* m, const float* r, const float* s, const float* gs, float gk, float prior_mu, float prior_sigma, float* gm, float* gr,
                  int64_t n, int threads) {
  const float gk_inv_var = gk / (prior_sigma * prior_sigma);
#pragma omp parallel for simd schedule(dynamic, kChunk) num_threads(threads) if (n >= kParallelFrom)
  for (int64_t i = 0; i < n; ++i) {
    const float g = (kHasGradSigma ? gs[i] : 0.0f) + gk_inv_var * s[i] - gk / s[i];
    gr[i] = g * sigmoid(r[i]);
    gm[i] = gk_inv_var * (m[i] - prior_mu);
  }
}

std::vector<paddle::Tensor> GaussianPosteriorBackward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& sigma,
                                                      const paddle::Tensor& grad_sigma, const paddle::Tensor& grad_kl, float prior_mu,
                                                      float prior_sigma, int threads) {
  auto grad_mu = paddle::empty(mu.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_rho = paddle::empty(rho.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float gk = grad_kl.initialized() ? grad_kl.data<float>()[0] : 0.0f;
  const auto pass = grad_sigma.initialized() && grad_sigma.numel() == rho.numel() ? BackwardPass<true> : BackwardPass<false>;
  pass(mu.data<float>(), rho.data<float>(), sigma.data<float>(), grad_sigma.initialized() ? grad_sigma.data<float>() : nullptr, gk, prior_mu,
       prior_sigma, grad_mu.data<float>(), grad_rho.data<float>(), rho.numel(), threads);
  return {grad_mu, grad_rho};
}

std::vector<std::vector<int64_t>> GaussianPosteriorInferShape(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape) {
  return {rho_shape, {}};
}

std::vector<paddle::DataType> GaussianPosteriorInferDtype(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype) {
  return {rho_dtype, rho_dtype};
}

// The scale-mixture prior p(w) = pi N(0, s1^2) + (1 - pi) N(0, s2^2) has no
// closed-form KL, so the KL is the Monte-Carlo estimate at one draw
// w = mu + sigma eps (eps given, standard normal):
//   kl = sum_i log q(w_i) - log p(w_i)
//      = sum_i -log sigma_i - eps_i^2 / 2 - log(a1_i + a2_i)   (the log(2 pi)/2 cancel)
// with a1 = pi / s1 e^(-w^2 / 2 s1^2), a2 = (1 - pi) / s2 e^(-w^2 / 2 s2^2),
// their log-sum-exp taken so that it is finite for any w.
// Backward, with gamma = a1 / (a1 + a2) (the wide component's responsibility)
// and g_w = w (gamma / s1^2 + (1 - gamma) / s2^2) = d kl / d w:
//   grad_mu  = grad_kl g_w
//   grad_rho = (grad_sigma + grad_kl (g_w eps - 1 / sigma)) sigmoid(rho)
namespace {

struct Mixture {
  float log_a1, log_a2, half_inv_var1, half_inv_var2;  // log(pi / s1), log((1 - pi) / s2), 1 / (2 s^2)
};

Mixture make_mixture(float pi, float sigma1, float sigma2) {
  return {std::log(pi / sigma1), std::log((1.0f - pi) / sigma2), 0.5f / (sigma1 * sigma1), 0.5f / (sigma2 * sigma2)};
}

// The two components' log-densities at w, without the common -log(2 pi)/2.
inline void mixture_logs(const Mixture& p, float w, float& l1, float& l2) {
  const float w2 = w * w;
  l1 = p.log_a1 - w2 * p.half_inv_var1;
  l2 = p.log_a2 - w2 * p.half_inv_var2;
}

}  // namespace

std::vector<paddle::Tensor> MixturePosteriorForward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps, float pi, float sigma1,
                                                    float sigma2, int threads) {
  check(mu, "mu");
  check(rho, "rho");
  check(eps, "eps");
  PD_CHECK(mu.numel() == rho.numel() && eps.numel() == rho.numel(), "mu, rho and eps must have the same number of elements");
  PD_CHECK(pi > 0.0f && pi < 1.0f, "pi must lie strictly between 0 and 1");
  auto sigma = paddle::empty(rho.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto kl = paddle::empty({}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* m = mu.data<float>();
  const float* r = rho.data<float>();
  const float* e = eps.data<float>();
  float* s = sigma.data<float>();
  const int64_t n = rho.numel();
  const Mixture prior = make_mixture(pi, sigma1, sigma2);
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);  // per fixed chunk, as above: the same sum for any thread count
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (n >= kParallelFrom)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double chunk_sum = 0.0;
#pragma omp simd reduction(+ : chunk_sum)
    for (int64_t i = c * kChunk; i < end; ++i) {
      const Softplus sp = softplus_and_log(r[i]);
      s[i] = sp.sigma;
      float l1, l2;
      mixture_logs(prior, m[i] + sp.sigma * e[i], l1, l2);
      const float high = l1 > l2 ? l1 : l2;
      const float low = l1 > l2 ? l2 : l1;
      const float log_p = high + fast_log(1.0f + fast_exp(low - high));
      chunk_sum += static_cast<double>(-sp.log_sigma - 0.5f * e[i] * e[i] - log_p);
    }
    partial[c] = chunk_sum;
  }
  double sum = 0.0;
  for (const double p : partial) sum += p;
  kl.data<float>()[0] = static_cast<float>(sum);
  return {sigma, kl};
}

template <bool kHasGradSigma>
void MixtureBackwardPass(const float* m, const float* r, const float* e, const float* s, const float* gs, float gk, const Mixture& prior,
                         float inv_var1, float inv_var2, float* gm, float* gr, int64_t n, int threads) {
#pragma omp parallel for simd schedule(dynamic, kChunk) num_threads(threads) if (n >= kParallelFrom)
  for (int64_t i = 0; i < n; ++i) {
    const float w = m[i] + s[i] * e[i];
    float l1, l2;
    mixture_logs(prior, w, l1, l2);
    const float gamma = 1.0f / (1.0f + fast_exp(l2 - l1));
    const float g_w = gk * w * (gamma * inv_var1 + (1.0f - gamma) * inv_var2);
    const float g = (kHasGradSigma ? gs[i] : 0.0f) + g_w * e[i] - gk / s[i];
    gr[i] = g * sigmoid(r[i]);
    gm[i] = g_w;
  }
}

std::vector<paddle::Tensor> MixturePosteriorBackward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps,
                                                     const paddle::Tensor& sigma, const paddle::Tensor& grad_sigma, const paddle::Tensor& grad_kl,
                                                     float pi, float sigma1, float sigma2, int threads) {
  auto grad_mu = paddle::empty(mu.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_rho = paddle::empty(rho.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float gk = grad_kl.initialized() ? grad_kl.data<float>()[0] : 0.0f;
  const auto pass = grad_sigma.initialized() && grad_sigma.numel() == rho.numel() ? MixtureBackwardPass<true> : MixtureBackwardPass<false>;
  pass(mu.data<float>(), rho.data<float>(), eps.data<float>(), sigma.data<float>(), grad_sigma.initialized() ? grad_sigma.data<float>() : nullptr, gk,
       make_mixture(pi, sigma1, sigma2), 1.0f / (sigma1 * sigma1), 1.0f / (sigma2 * sigma2), grad_mu.data<float>(), grad_rho.data<float>(), rho.numel(),
       threads);
  return {grad_mu, grad_rho};
}

std::vector<std::vector<int64_t>> MixturePosteriorInferShape(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape,
                                                             const std::vector<int64_t>& eps_shape) {
  return {rho_shape, {}};
}

std::vector<paddle::DataType> MixturePosteriorInferDtype(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype,
                                                         const paddle::DataType& eps_dtype) {
  return {rho_dtype, rho_dtype};
}

PD_BUILD_OP(gaussian_posterior_kl)
    .Inputs({"Mu", "Rho"})
    .Outputs({"Sigma", "KL"})
    .Attrs({"prior_mu: float", "prior_sigma: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(GaussianPosteriorForward))
    .SetInferShapeFn(PD_INFER_SHAPE(GaussianPosteriorInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(GaussianPosteriorInferDtype));

PD_BUILD_GRAD_OP(gaussian_posterior_kl)
    .Inputs({"Mu", "Rho", "Sigma", paddle::Grad("Sigma"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"prior_mu: float", "prior_sigma: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(GaussianPosteriorBackward));

PD_BUILD_OP(mixture_posterior_kl)
    .Inputs({"Mu", "Rho", "Eps"})
    .Outputs({"Sigma", "KL"})
    .Attrs({"pi: float", "sigma1: float", "sigma2: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(MixturePosteriorForward))
    .SetInferShapeFn(PD_INFER_SHAPE(MixturePosteriorInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(MixturePosteriorInferDtype));

PD_BUILD_GRAD_OP(mixture_posterior_kl)
    .Inputs({"Mu", "Rho", "Eps", "Sigma", paddle::Grad("Sigma"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"pi: float", "sigma1: float", "sigma2: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(MixturePosteriorBackward));
