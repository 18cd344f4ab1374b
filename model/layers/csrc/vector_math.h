// Helpers shared by the CPU operators: exp and log that vectorize, the check
// on a tensor argument, and the threads that share a pass over the elements.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "paddle/extension.h"

namespace bbb {

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

constexpr int64_t kChunk = 1 << 13;  // dynamic chunks: a thread slowed by other processes does fewer

inline void check(const paddle::Tensor& t, const char* name) {
  PD_CHECK(t.is_cpu(), name, " must be on the CPU");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, name, " must be float32");
}

// Runs body(c) for c = 0 .. chunks - 1 on up to `threads` threads, each taking
// the next chunk when it is done with one (a thread slowed by other processes
// does fewer). Plain threads that exit when the work is done, not OpenMP: an
// OpenMP runtime keeps its threads spinning after each call, and those spinning
// threads took the cores from Paddle's matrix products (MKL's own OpenMP
// runtime), which made a 2fc LRT step 13 ms slower on 2 cores. Starting a thread
// costs tens of microseconds, so each gets kChunksPerThread chunks' work or more
// (about 0.1 ms; smaller tensors run on the calling thread alone).
constexpr int64_t kChunksPerThread = 16;

template <class Body>
void ParallelChunks(int64_t chunks, int threads, const Body& body) {
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t c = next++; c < chunks; c = next++) body(c);
  };
  const int64_t used = std::min<int64_t>(threads, std::max<int64_t>(1, chunks / kChunksPerThread));
  std::vector<std::thread> helpers;
  for (int64_t t = 1; t < used; ++t) helpers.emplace_back(work);
  work();
  for (auto& helper : helpers) helper.join();
}

}  // namespace bbb
