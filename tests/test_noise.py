import math

import numpy as np
import paddle
import pytest

from model.layers import BBB, fused, noise
from model.layers.noise import standard_normal_like
from utils.runtime import seed_everything


@pytest.fixture
def generator(monkeypatch):
    """The C++ generator, enabled even where BBB_FUSED_KL=0 runs the rest of the suite."""
    monkeypatch.setattr(fused, "ENABLED", True)
    if fused._op() is None:
        pytest.skip("the C++ operators could not be built here")


@pytest.fixture(params=["c++", "numpy"])
def source(request, monkeypatch):
    """Each test runs on both CPU sources of noise: the C++ generator and NumPy's."""
    if request.param == "numpy":
        monkeypatch.setattr(fused, "standard_normal", lambda *args: None)
    else:
        request.getfixturevalue("generator")
    return request.param


def test_noise_is_standard_normal(source):
    seed_everything(0)
    draws = np.concatenate([standard_normal_like(paddle.zeros([400, 500])).numpy().ravel() for _ in range(5)])
    assert abs(draws.mean()) < 0.005 and draws.var() == pytest.approx(1.0, abs=0.005)
    assert abs(((draws > 1.96) | (draws < -1.96)).mean() - 0.05) < 0.002  # normal tails, not just two moments
    assert draws.dtype == np.float32
    # Kolmogorov-Smirnov against the normal CDF; 1.63 / sqrt(n) is the 1 % critical value
    ordered = np.sort(draws)[::50]
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(ordered.astype(np.float64) / math.sqrt(2.0)))
    empirical = (np.arange(draws.size)[::50] + 0.5) / draws.size
    assert np.abs(cdf - empirical).max() < 1.63 / math.sqrt(draws.size)


def test_noise_differs_between_steps_and_between_weights(source):
    seed_everything(0)
    like = paddle.zeros([300, 200])
    first, second = standard_normal_like(like).numpy(), standard_normal_like(like).numpy()
    assert not np.array_equal(first, second)
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.02
    # within one draw, weights are independent of their neighbours
    assert abs(np.corrcoef(first.ravel()[:-1], first.ravel()[1:])[0, 1]) < 0.02


def test_a_fixed_seed_reproduces_the_noise_and_the_sampled_nets(source):
    def run():
        seed_everything(123)
        layer = BBB.BBBLinear(50, 20)
        x = paddle.ones([4, 50])
        return [standard_normal_like(paddle.zeros([7, 3])).numpy()] + [layer(x).numpy() for _ in range(3)]

    first, again = run(), run()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[1], first[2])  # each forward draws new weights


def test_without_a_seeded_stream_paddle_randn_is_used():
    saved = noise._stream
    noise._stream = None
    try:
        paddle.seed(5)
        a = standard_normal_like(paddle.zeros([3]))
        paddle.seed(5)
        np.testing.assert_array_equal(a.numpy(), paddle.randn([3]).numpy())
    finally:
        noise._stream = saved


# The C++ generator (csrc/standard_normal.cc) against this reference in NumPy.


def philox4x32_10(counters: np.ndarray, key: tuple[int, int]) -> np.ndarray:
    """Philox4x32-10 of each row of counters (uint32, shape [n, 4])."""
    x = [counters[:, i].astype(np.uint64) for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    mask = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * x[0], np.uint64(0xCD9E8D57) * x[2]
        x = [((p1 >> np.uint64(32)) ^ x[1] ^ k0) & mask, p1 & mask, ((p0 >> np.uint64(32)) ^ x[3] ^ k1) & mask, p0 & mask]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & mask, (k1 + np.uint64(0xBB67AE85)) & mask
    return np.stack(x, axis=1).astype(np.uint32)


def test_the_philox_reference_matches_the_published_known_answers():
    # Random123's known-answer tests for philox4x32-10
    cases = [
        ([0, 0, 0, 0], (0, 0), [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, (0xFFFFFFFF, 0xFFFFFFFF), [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], (0xA4093822, 0x299F31D0), [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    for counter, key, expected in cases:
        assert philox4x32_10(np.array([counter], dtype=np.uint32), key)[0].tolist() == expected


def reference_normals(size: int, seed: int, offset: int, chunk: int = 1 << 13) -> np.ndarray:
    """What the C++ generator draws: per chunk, block b (counter offset + chunk start / 4 + b)
    gives four normals by Box-Muller, written to elements b, b + q, b + 2q, b + 3q."""
    out = np.empty(size)
    for begin in range(0, size, chunk):
        n = min(chunk, size - begin)
        q = (n + 3) // 4
        blocks = offset + begin // 4 + np.arange(q, dtype=np.uint64)
        counters = np.stack([blocks & np.uint64(0xFFFFFFFF), blocks >> np.uint64(32), 0 * blocks, 0 * blocks], axis=1).astype(np.uint32)
        r = philox4x32_10(counters, (seed & 0xFFFFFFFF, seed >> 32)).astype(np.float64)
        radius_a, radius_b = (np.sqrt(-2 * np.log((r[:, i] + 0.5) * 2.0**-32)) for i in (0, 2))
        angle_a, angle_b = (2 * np.pi * r[:, i] * 2.0**-32 for i in (1, 3))
        normals = np.concatenate([radius_a * np.cos(angle_a), radius_a * np.sin(angle_a), radius_b * np.cos(angle_b), radius_b * np.sin(angle_b)])
        out[begin : begin + n] = normals[:n]
    return out


@pytest.mark.parametrize("shape", [(3,), (7, 5), (300, 70), (1200, 31)])  # one block, a tail, several chunks
def test_the_generator_draws_philox_box_muller_normals(generator, shape):
    like = paddle.zeros(list(shape))
    seed, offset = (1 << 40) + 12345, 987654321
    got = fused.standard_normal(like, seed, offset).numpy()
    assert got.shape == shape and got.dtype == np.float32
    np.testing.assert_allclose(got.ravel(), reference_normals(like.size, seed, offset), rtol=2e-5, atol=2e-5)


def test_the_generator_is_the_same_on_any_number_of_threads(generator, monkeypatch):
    like = paddle.zeros([1000, 700])  # enough chunks for several threads
    draws = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(fused, "threads", lambda: threads)
        draws.append(fused.standard_normal(like, 7, 0).numpy())
    np.testing.assert_array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[0], draws[2])


def test_a_fused_activation_sample_matches_paddle_with_the_same_noise(generator, monkeypatch):
    # LRT's mean + sqrt(var + eps) * noise in one pass, against Paddle's operators
    # fed the same draw (the same seed, the same C++ normals)
    rng = np.random.default_rng(0)
    mean_values = rng.normal(size=(300, 500)).astype("float32")
    var_values = rng.uniform(0, 2, (300, 500)).astype("float32")
    var_values[0, :3] = 0.0  # where only var_eps keeps sqrt differentiable
    weights = paddle.to_tensor(rng.uniform(-1, 1, (300, 500)).astype("float32"))

    def sample():
        mean, var = paddle.to_tensor(mean_values), paddle.to_tensor(var_values)
        mean.stop_gradient = var.stop_gradient = False
        noise.seed(11)
        drawn = noise.normal_sample(mean, var, 1e-16)
        (drawn * weights).sum().backward()
        return drawn.numpy(), mean.grad.numpy(), var.grad.numpy()

    got, got_mean_grad, got_var_grad = sample()
    monkeypatch.setattr(fused, "normal_sample", lambda *args: None)
    want, want_mean_grad, want_var_grad = sample()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got_mean_grad, want_mean_grad)
    np.testing.assert_allclose(got_var_grad, want_var_grad, rtol=1e-5)
