// Fused Gaussian posterior for Bayes by Backprop, float32 on the CPU.
//
// For mu and rho of any shape, one vectorized (and, with threads > 1,
// multi-threaded) pass computes sigma = softplus(rho) and the KL term summed
// over the elements; one pass computes the gradients. Two priors:
//   Gaussian N(prior_mu, prior_sigma^2), closed form, per element
//     log(prior_sigma / sigma) + (sigma^2 + (mu - prior_mu)^2) / (2 prior_sigma^2) - 1/2
//   scale mixture pi N(0, s1^2) + (1 - pi) N(0, s2^2), no closed form: the
//     Monte-Carlo estimate log q(w) - log p(w) at the draw w = mu + sigma eps
//     (eps given), = -log sigma - eps^2 / 2 - log(a1 + a2) per element with
//     a1 = pi / s1 e^(-w^2 / 2 s1^2), a2 = (1 - pi) / s2 e^(-w^2 / 2 s2^2)
//     (the log(2 pi) / 2 cancel), the sum taken as a log-sum-exp.
// and two outputs beside the KL, so that what the layer's forward needs, and its
// gradient, are in the same pass:
//   *_variance_kl: sigma^2 (LRT: the weights' share of the activations' variance);
//   *_sample_kl:   the weight draw w = mu + sigma eps (BBB).
// Backward, with d_mu, d_sigma the KL term's partial derivatives:
//   grad_mu  = grad_kl d_mu                 (+ grad_w for a draw)
//   grad_rho = (grad_kl d_sigma + 2 sigma grad_var, or grad_w eps for a draw) sigmoid(rho)
// The forward knows everything here but grad_kl and grad_out, so it also writes
//   a = d_mu,  b = d_sigma sigmoid(rho),  c = eps sigmoid(rho) (draw) or 2 sigma sigmoid(rho)
// and the backward is the streaming pass grad_mu = grad_kl a (+ grad_w),
// grad_rho = grad_kl b + grad_out c: no softplus, exp or log a second time
// (the mixture's backward took longer than its forward before).
// Replaces ten to thirty single-threaded elementwise kernels and their gradients.
// Up to `threads` threads share large tensors (see ParallelChunks).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"
#include "vector_math.h"

namespace {

using namespace bbb;

constexpr float kThreshold = 20.0f;  // paddle.nn.functional.softplus's default

// softplus(r) = log(1 + e^r): r above the threshold, e^r below -20 (where
// log1p(e^r) = e^r to float precision), log1p(e^r) between, as
// log(u) e^r / (u - 1) with u = 1 + e^r (exact where u rounds to 1 too).
// Also gives log(softplus(r)), which is r below -20, and softplus's derivative
// sigmoid(r) = e^r / u from the same e^r (exactly 1 above the threshold too, as
// softplus's gradient is there). The compiler drops what a loop does not use.
struct Softplus {
  float sigma, log_sigma, sigmoid;
};

inline Softplus softplus_and_log(float r) {
  const float e = fast_exp(r);
  const float u = 1.0f + e;
  const float log1p_e = u == 1.0f ? e : fast_log(u) * (e / (u - 1.0f));
  const float sigma = r > kThreshold ? r : (r < -kThreshold ? e : log1p_e);
  return {sigma, r < -kThreshold ? r : fast_log(sigma), e / u};
}

// What the forward needs of a prior at one element: its KL term and the term's
// partial derivatives in mu and sigma.
struct Terms {
  float kl, d_mu, d_sigma;
};

struct GaussianPrior {
  static constexpr bool kUsesEps = false;
  static constexpr bool kSplit = false;  // see ForwardChunk
  float prior_mu, prior_sigma;

  double constant(int64_t n) const { return static_cast<double>(n) * (std::log(static_cast<double>(prior_sigma)) - 0.5); }

  Terms terms(float m, const Softplus& sp, float) const {
    const float inv_var = 1.0f / (prior_sigma * prior_sigma);
    const float d = m - prior_mu;
    return {(sp.sigma * sp.sigma + d * d) * (0.5f * inv_var) - sp.log_sigma, d * inv_var, sp.sigma * inv_var - 1.0f / sp.sigma};
  }
};

struct MixturePrior {
  static constexpr bool kUsesEps = true;
  static constexpr bool kSplit = true;
  float log_a1, log_a2, inv_var1, inv_var2;  // log(pi / s1), log((1 - pi) / s2), 1 / s^2

  MixturePrior(float pi, float sigma1, float sigma2)
      : log_a1(std::log(pi / sigma1)), log_a2(std::log((1.0f - pi) / sigma2)), inv_var1(1.0f / (sigma1 * sigma1)), inv_var2(1.0f / (sigma2 * sigma2)) {
    PD_CHECK(pi > 0.0f && pi < 1.0f, "pi must lie strictly between 0 and 1");
  }

  double constant(int64_t) const { return 0.0; }

  // The two components' log-densities at w, without the common -log(2 pi)/2.
  // always_inline: left to itself, GCC 12 made these calls, and the forward loop
  // scalar and 5 times slower (forcing every helper inline slowed the Gaussian's).
  __attribute__((always_inline)) void logs(float w, float& l1, float& l2) const {
    const float half_w2 = 0.5f * w * w;
    l1 = log_a1 - half_w2 * inv_var1;
    l2 = log_a2 - half_w2 * inv_var2;
  }

  // With gamma = a1 / (a1 + a2), the wide component's responsibility,
  // d kl / d w = w (gamma / s1^2 + (1 - gamma) / s2^2), and w = mu + sigma eps;
  // gamma comes from the log-sum-exp's own exp.
  __attribute__((always_inline)) Terms terms(float m, const Softplus& sp, float e) const {
    const float w = m + sp.sigma * e;
    float l1, l2;
    logs(w, l1, l2);
    const bool wide = l1 > l2;
    const float high = wide ? l1 : l2;
    const float low = wide ? l2 : l1;
    // low - high is below -1000 for most weights near the narrow spike; cut at
    // -80 so that t stays a normal float: each operation a subnormal enters costs
    // a microcode assist on Intel CPUs (the pass ran twice as slow), and neither
    // log(1 + t) nor gamma changes in float.
    const float t = fast_exp(std::max(low - high, -80.0f));
    const float gamma = wide ? 1.0f / (1.0f + t) : t / (1.0f + t);
    const float d_mu = w * (gamma * inv_var1 + (1.0f - gamma) * inv_var2);
    return {-sp.log_sigma - 0.5f * e * e - (high + fast_log(1.0f + t)), d_mu, d_mu * e - 1.0f / sp.sigma};
  }
};

// No prior: the posterior's draw or sigma^2 alone, for the passes that need no KL
// (evaluation); the KL terms are zeros the compiler drops, with log sigma.
struct NoPrior {
  static constexpr bool kUsesEps = false;
  static constexpr bool kSplit = false;
  double constant(int64_t) const { return 0.0; }
  Terms terms(float, const Softplus&, float) const { return {0.0f, 0.0f, 0.0f}; }
};

// What the backward reads (see the top): a = d_mu, b = d_sigma sigmoid(rho),
// c = eps sigmoid(rho) or 2 sigma sigmoid(rho); all null where no backward follows.
struct Saved {
  float *a, *b, *c;
};

// Element i of the forward: out = sigma^2, or the draw mu + sigma eps (kDraw),
// and with kSave what the backward needs; returns the element's KL term. e is
// read only where the prior or the draw uses it (null otherwise).
template <class Prior, bool kDraw, bool kSave>
__attribute__((always_inline)) inline float ForwardElement(const Prior& prior, const float* m, const Softplus& sp, const float* e, float* out, Saved saved,
                                                           int64_t i) {
  const float ei = Prior::kUsesEps || kDraw ? e[i] : 0.0f;
  const Terms t = prior.terms(m[i], sp, ei);
  out[i] = kDraw ? m[i] + sp.sigma * ei : sp.sigma * sp.sigma;
  if (kSave) {
    saved.a[i] = t.d_mu;
    saved.b[i] = t.d_sigma * sp.sigmoid;
    saved.c[i] = (kDraw ? ei : 2.0f * sp.sigma) * sp.sigmoid;
  }
  return t.kl;
}

// The mixture's training forward (Prior::kSplit) takes a chunk in blocks:
// softplus first, into buffers in the cache, then the prior's terms. As one loop
// its body is long enough that its registers spill; split, with the same results,
// it ran 12-20 % faster on one Zen 4 core with the data in the cache, and on
// 2fc-1200 (2 threads, alternating bench runs on a noisy machine) 6.8-7.1 -> 5.4-6.8 ms.
// The Gaussian's terms are cheap, and there the split was slower (3.8 -> 4.1-5.0 ms).
constexpr int64_t kBlock = 1024;

// Forward over elements [begin, end); returns the KL terms' sum. Its own
// function, with the prior by value, so that the compiler sees nothing the
// stores could change, and vectorizes.
template <class Prior, bool kDraw, bool kSave>
double ForwardChunk(const Prior prior, const float* m, const float* r, const float* e, float* out, Saved saved, int64_t begin, int64_t end) {
  double sum = 0.0;
  if constexpr (!(kSave && Prior::kSplit)) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = begin; i < end; ++i) sum += static_cast<double>(ForwardElement<Prior, kDraw, kSave>(prior, m, softplus_and_log(r[i]), e, out, saved, i));
  } else {
    alignas(64) float sigma[kBlock], log_sigma[kBlock], sigmoid[kBlock];
    for (int64_t start = begin; start < end; start += kBlock) {
      const int64_t stop = std::min(end, start + kBlock);
#pragma omp simd
      for (int64_t i = start; i < stop; ++i) {
        const Softplus sp = softplus_and_log(r[i]);
        sigma[i - start] = sp.sigma;
        log_sigma[i - start] = sp.log_sigma;
        sigmoid[i - start] = sp.sigmoid;
      }
#pragma omp simd reduction(+ : sum)
      for (int64_t i = start; i < stop; ++i) {
        const Softplus sp{sigma[i - start], log_sigma[i - start], sigmoid[i - start]};
        sum += static_cast<double>(ForwardElement<Prior, kDraw, kSave>(prior, m, sp, e, out, saved, i));
      }
    }
  }
  return sum;
}

template <class Prior, bool kDraw, bool kSave>
float ForwardPass(const Prior& prior, const float* m, const float* r, const float* e, float* out, Saved saved, int64_t n, int threads) {
  // One partial sum per fixed chunk, added up in order: the KL is the same
  // number whatever the thread count and however the chunks were shared out.
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
  ParallelChunks(chunks, threads, [&](int64_t c) {
    partial[c] = ForwardChunk<Prior, kDraw, kSave>(prior, m, r, e, out, saved, c * kChunk, std::min(n, (c + 1) * kChunk));
  });
  double sum = prior.constant(n);
  for (const double p : partial) sum += p;
  return static_cast<float>(sum);
}

// Backward over elements [begin, end); templates so that every variant
// vectorizes (a run-time flag inside the loop made it about 30 % slower).
// kHasGradOut: whether a gradient reached the output (none does when nothing
// downstream used it).
template <bool kDraw, bool kHasGradOut>
void BackwardChunk(const float* a, const float* b, const float* c, const float* g_out, float gk, float* gm, float* gr, int64_t begin, int64_t end) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const float go = kHasGradOut ? g_out[i] : 0.0f;
    gm[i] = gk * a[i] + (kDraw ? go : 0.0f);
    gr[i] = gk * b[i] + go * c[i];
  }
}

template <bool kDraw, bool kHasGradOut>
void BackwardPass(const float* a, const float* b, const float* c, const float* g_out, float gk, float* gm, float* gr, int64_t n, int threads) {
  ParallelChunks((n + kChunk - 1) / kChunk, threads, [&](int64_t chunk) {
    BackwardChunk<kDraw, kHasGradOut>(a, b, c, g_out, gk, gm, gr, chunk * kChunk, std::min(n, (chunk + 1) * kChunk));
  });
}

// kSave: the training operators, whose outputs are (out, kl, a, b, c), the last
// three for the backward; without it (no prior) just (out, kl).
template <class Prior, bool kDraw, bool kSave = true>
std::vector<paddle::Tensor> Forward(const Prior& prior, const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor* eps, int threads) {
  check(mu, "mu");
  check(rho, "rho");
  PD_CHECK(mu.numel() == rho.numel(), "mu and rho must have the same number of elements");
  if (eps != nullptr) {
    check(*eps, "eps");
    PD_CHECK(eps->numel() == rho.numel(), "eps must have as many elements as rho");
  }
  auto empty = [](const paddle::Tensor& like) { return paddle::empty(like.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace()); };
  std::vector<paddle::Tensor> outputs = {empty(rho), paddle::empty({}, paddle::DataType::FLOAT32, paddle::CPUPlace())};
  Saved saved{nullptr, nullptr, nullptr};
  if (kSave) {
    outputs.insert(outputs.end(), {empty(mu), empty(rho), empty(rho)});
    saved = {outputs[2].data<float>(), outputs[3].data<float>(), outputs[4].data<float>()};
  }
  outputs[1].data<float>()[0] = ForwardPass<Prior, kDraw, kSave>(prior, mu.data<float>(), rho.data<float>(), eps ? eps->data<float>() : nullptr,
                                                                 outputs[0].data<float>(), saved, rho.numel(), threads);
  return outputs;
}

// The same for every prior: the forward saved what the prior contributes.
template <bool kDraw>
std::vector<paddle::Tensor> Backward(const paddle::Tensor& a, const paddle::Tensor& b, const paddle::Tensor& c, const paddle::Tensor& grad_out,
                                     const paddle::Tensor& grad_kl, int threads) {
  auto grad_mu = paddle::empty(a.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto grad_rho = paddle::empty(b.shape(), paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float gk = grad_kl.initialized() ? grad_kl.data<float>()[0] : 0.0f;
  const bool has_grad_out = grad_out.initialized() && grad_out.numel() == b.numel();
  const auto pass = has_grad_out ? BackwardPass<kDraw, true> : BackwardPass<kDraw, false>;
  pass(a.data<float>(), b.data<float>(), c.data<float>(), has_grad_out ? grad_out.data<float>() : nullptr, gk, grad_mu.data<float>(),
       grad_rho.data<float>(), b.numel(), threads);
  return {grad_mu, grad_rho};
}

}  // namespace

// The four operators: {gaussian, mixture} x {variance (sigma^2), sample (w)};
// their backward passes, one per kind of output; and the two without a prior.

std::vector<paddle::Tensor> GaussianVarianceForward(const paddle::Tensor& mu, const paddle::Tensor& rho, float prior_mu, float prior_sigma, int threads) {
  return Forward<GaussianPrior, false>({prior_mu, prior_sigma}, mu, rho, nullptr, threads);
}

std::vector<paddle::Tensor> GaussianSampleForward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps, float prior_mu,
                                                  float prior_sigma, int threads) {
  return Forward<GaussianPrior, true>({prior_mu, prior_sigma}, mu, rho, &eps, threads);
}

std::vector<paddle::Tensor> MixtureVarianceForward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps, float pi, float sigma1,
                                                    float sigma2, int threads) {
  return Forward<MixturePrior, false>(MixturePrior(pi, sigma1, sigma2), mu, rho, &eps, threads);
}

std::vector<paddle::Tensor> MixtureSampleForward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps, float pi, float sigma1,
                                                 float sigma2, int threads) {
  return Forward<MixturePrior, true>(MixturePrior(pi, sigma1, sigma2), mu, rho, &eps, threads);
}

std::vector<paddle::Tensor> VarianceBackward(const paddle::Tensor& a, const paddle::Tensor& b, const paddle::Tensor& c, const paddle::Tensor& grad_variance,
                                             const paddle::Tensor& grad_kl, int threads) {
  return Backward<false>(a, b, c, grad_variance, grad_kl, threads);
}

std::vector<paddle::Tensor> SampleBackward(const paddle::Tensor& a, const paddle::Tensor& b, const paddle::Tensor& c, const paddle::Tensor& grad_w,
                                           const paddle::Tensor& grad_kl, int threads) {
  return Backward<true>(a, b, c, grad_w, grad_kl, threads);
}

// Without a KL and without gradients (evaluation): the draw, or sigma^2.
std::vector<paddle::Tensor> PosteriorSampleForward(const paddle::Tensor& mu, const paddle::Tensor& rho, const paddle::Tensor& eps, int threads) {
  return {Forward<NoPrior, true, false>({}, mu, rho, &eps, threads)[0]};
}

std::vector<paddle::Tensor> PosteriorVarianceForward(const paddle::Tensor& mu, const paddle::Tensor& rho, int threads) {
  return {Forward<NoPrior, false, false>({}, mu, rho, nullptr, threads)[0]};
}

std::vector<std::vector<int64_t>> OneOutputShape(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape) { return {rho_shape}; }

std::vector<paddle::DataType> OneOutputDtype(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype) { return {rho_dtype}; }

std::vector<std::vector<int64_t>> OneOutputShapeWithEps(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape,
                                                        const std::vector<int64_t>& eps_shape) {
  return {rho_shape};
}

std::vector<paddle::DataType> OneOutputDtypeWithEps(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype, const paddle::DataType& eps_dtype) {
  return {rho_dtype};
}

// The training operators' outputs: out, kl, and the saved a (mu's shape), b, c.
std::vector<std::vector<int64_t>> TwoInputShape(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape) {
  return {rho_shape, {}, mu_shape, rho_shape, rho_shape};
}

std::vector<std::vector<int64_t>> ThreeInputShape(const std::vector<int64_t>& mu_shape, const std::vector<int64_t>& rho_shape,
                                                  const std::vector<int64_t>& eps_shape) {
  return {rho_shape, {}, mu_shape, rho_shape, rho_shape};
}

std::vector<paddle::DataType> TwoInputDtype(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype) { return {rho_dtype, rho_dtype, rho_dtype, rho_dtype, rho_dtype}; }

std::vector<paddle::DataType> ThreeInputDtype(const paddle::DataType& mu_dtype, const paddle::DataType& rho_dtype, const paddle::DataType& eps_dtype) {
  return {rho_dtype, rho_dtype, rho_dtype, rho_dtype, rho_dtype};
}

PD_BUILD_OP(gaussian_variance_kl)
    .Inputs({"Mu", "Rho"})
    .Outputs({"Var", "KL", "A", "B", "C"})
    .Attrs({"prior_mu: float", "prior_sigma: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(GaussianVarianceForward))
    .SetInferShapeFn(PD_INFER_SHAPE(TwoInputShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(TwoInputDtype));

PD_BUILD_GRAD_OP(gaussian_variance_kl)
    .Inputs({"A", "B", "C", paddle::Grad("Var"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(VarianceBackward));

PD_BUILD_OP(gaussian_sample_kl)
    .Inputs({"Mu", "Rho", "Eps"})
    .Outputs({"W", "KL", "A", "B", "C"})
    .Attrs({"prior_mu: float", "prior_sigma: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(GaussianSampleForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ThreeInputShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ThreeInputDtype));

PD_BUILD_GRAD_OP(gaussian_sample_kl)
    .Inputs({"A", "B", "C", paddle::Grad("W"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(SampleBackward));

PD_BUILD_OP(mixture_variance_kl)
    .Inputs({"Mu", "Rho", "Eps"})
    .Outputs({"Var", "KL", "A", "B", "C"})
    .Attrs({"pi: float", "sigma1: float", "sigma2: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(MixtureVarianceForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ThreeInputShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ThreeInputDtype));

PD_BUILD_GRAD_OP(mixture_variance_kl)
    .Inputs({"A", "B", "C", paddle::Grad("Var"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(VarianceBackward));

PD_BUILD_OP(mixture_sample_kl)
    .Inputs({"Mu", "Rho", "Eps"})
    .Outputs({"W", "KL", "A", "B", "C"})
    .Attrs({"pi: float", "sigma1: float", "sigma2: float", "threads: int"})
    .SetKernelFn(PD_KERNEL(MixtureSampleForward))
    .SetInferShapeFn(PD_INFER_SHAPE(ThreeInputShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(ThreeInputDtype));

PD_BUILD_GRAD_OP(mixture_sample_kl)
    .Inputs({"A", "B", "C", paddle::Grad("W"), paddle::Grad("KL")})
    .Outputs({paddle::Grad("Mu"), paddle::Grad("Rho")})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(SampleBackward));

PD_BUILD_OP(bbb_posterior_sample)
    .Inputs({"Mu", "Rho", "Eps"})
    .Outputs({"W"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(PosteriorSampleForward))
    .SetInferShapeFn(PD_INFER_SHAPE(OneOutputShapeWithEps))
    .SetInferDtypeFn(PD_INFER_DTYPE(OneOutputDtypeWithEps));

PD_BUILD_OP(bbb_posterior_variance)
    .Inputs({"Mu", "Rho"})
    .Outputs({"Var"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(PosteriorVarianceForward))
    .SetInferShapeFn(PD_INFER_SHAPE(OneOutputShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(OneOutputDtype));
