import numpy as np
import paddle
import pytest

from model.layers import BBB, noise
from model.layers.noise import standard_normal_like
from utils.runtime import seed_everything


def test_noise_is_standard_normal():
    seed_everything(0)
    draws = np.concatenate([standard_normal_like(paddle.zeros([400, 500])).numpy().ravel() for _ in range(5)])
    assert abs(draws.mean()) < 0.005 and draws.var() == pytest.approx(1.0, abs=0.005)
    assert abs(((draws > 1.96) | (draws < -1.96)).mean() - 0.05) < 0.002  # normal tails, not just two moments
    assert draws.dtype == np.float32


def test_noise_differs_between_steps_and_between_weights():
    seed_everything(0)
    like = paddle.zeros([300, 200])
    first, second = standard_normal_like(like).numpy(), standard_normal_like(like).numpy()
    assert not np.array_equal(first, second)
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.02
    # within one draw, weights are independent of their neighbours
    assert abs(np.corrcoef(first.ravel()[:-1], first.ravel()[1:])[0, 1]) < 0.02


def test_a_fixed_seed_reproduces_the_noise_and_the_sampled_nets():
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
