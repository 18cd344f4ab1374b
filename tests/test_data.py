import os

import numpy as np
import pytest

from conftest import FIXTURES
from data import build_test_loader, build_train_valid_loaders, load_image
from data.datasets import build_transform, expand_image_paths, split_indices
from utils.errors import DataError, ImageError

CIFAR = os.path.join(FIXTURES, "cifar")
IMAGES = os.path.join(FIXTURES, "images")


def test_split_is_seeded_disjoint_and_complete():
    train, valid = split_indices(600, 100, seed=2021)
    assert len(valid) == 100 and len(train) == 500
    assert not set(train) & set(valid) and set(train) | set(valid) == set(range(600))
    again, _ = split_indices(600, 100, seed=2021)
    other, _ = split_indices(600, 100, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert len(split_indices(600, 0.25, seed=0)[1]) == 150
    everything, nothing = split_indices(600, 0, seed=2021)  # data.valid_size 0: train on every image
    assert np.array_equal(everything, np.arange(600)) and len(nothing) == 0


def test_split_that_leaves_nothing_is_an_error():
    with pytest.raises(DataError, match="valid_size 600 leaves no training"):
        split_indices(600, 600, seed=0)
    with pytest.raises(DataError, match="valid_size 0.0001 leaves no training or no validation"):
        split_indices(600, 0.0001, seed=0)  # a fraction that rounds to no image is not 0


def test_mnist_loaders_give_normalised_batches(small_cfg):
    cfg = small_cfg()
    train, valid = build_train_valid_loaders(cfg)
    assert len(train.dataset) == 500 and len(valid.dataset) == 100
    images, labels = next(iter(train))
    assert list(images.shape) == [100, 1, 28, 28] and list(labels.shape) == [100]
    assert str(labels.dtype).endswith("int64")
    assert float(images.max()) == pytest.approx(255 / 126, rel=1e-3) and float(images.min()) == 0.0
    assert len(build_test_loader(cfg).dataset) == 200


def test_resize_for_conv_nets(small_cfg):
    images, _ = next(iter(build_test_loader(small_cfg("data.input_size=32"))))
    assert list(images.shape)[1:] == [1, 32, 32]


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_fixtures_in_the_official_layout(small_cfg, name, classes):
    cfg = small_cfg(f"data.name={name}", f"data.root={CIFAR}", "data.valid_size=10", "data.mean=[125.0, 123.0, 114.0]", "data.std=[63.0, 62.0, 66.0]", "data.input_size=32")
    train, valid = build_train_valid_loaders(cfg)
    images, labels = next(iter(train))
    assert list(images.shape)[1:] == [3, 32, 32]
    assert int(labels.max()) < classes
    assert len(build_test_loader(cfg).dataset) in (20, 50)


def test_horizontal_flip_only_for_training(small_cfg):
    cfg = small_cfg("data.name=cifar10", f"data.root={CIFAR}", "data.hflip=true", "data.mean=[0, 0, 0]", "data.std=[1, 1, 1]", "data.input_size=32")
    names = lambda t: [type(s).__name__ for s in t.transforms]  # noqa: E731
    assert "RandomHorizontalFlip" in names(build_transform(cfg.data, train=True))
    assert "RandomHorizontalFlip" not in names(build_transform(cfg.data, train=False))


def test_missing_data_files_name_the_expected_paths(small_cfg, tmp_path):
    cfg = small_cfg(f"data.root={tmp_path}")
    with pytest.raises(DataError, match=f"missing data file.*{tmp_path}/train-images-idx3-ubyte.gz"):
        build_train_valid_loaders(cfg)


def test_wrong_number_of_channels_in_normalisation(small_cfg):
    from utils.errors import ConfigError

    cfg = small_cfg("data.name=cifar10", f"data.root={CIFAR}", "data.input_size=32", "data.valid_size=10")
    with pytest.raises(ConfigError, match="data.mean and data.std need 3 entries"):
        build_train_valid_loaders(cfg)


def test_any_image_size_and_colour_becomes_the_net_input(small_cfg):
    cfg = small_cfg()
    small = load_image(os.path.join(IMAGES, "mnist_0_7.png"), cfg.data)
    big_rgb = load_image(os.path.join(IMAGES, "mnist_0_7_rgb64.png"), cfg.data)
    assert small.shape == big_rgb.shape == (1, 1, 28, 28)
    assert np.abs(small - big_rgb).mean() < 0.15  # same digit after resizing


def test_unreadable_image_and_empty_folder(small_cfg, tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("this is not an image")
    with pytest.raises(ImageError, match="cannot read image .*fake.png"):
        load_image(str(fake), small_cfg().data)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageError, match="holds no image files"):
        expand_image_paths([str(empty)])


def test_folder_expands_to_its_images():
    paths = expand_image_paths([IMAGES])
    assert len(paths) >= 6 and all(p.endswith(".png") for p in paths)


def test_image_and_label_files_that_are_not_a_pair_say_so(small_cfg, tmp_path):
    import shutil

    shutil.copy(os.path.join(FIXTURES, "mnist", "train-images-idx3-ubyte.gz"), tmp_path / "train-images-idx3-ubyte.gz")
    shutil.copy(os.path.join(FIXTURES, "mnist", "t10k-labels-idx1-ubyte.gz"), tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="holds 600 images but .* holds 200 labels: they are not a pair"):
        build_train_valid_loaders(small_cfg(f"data.root={tmp_path}"))


def _digit():
    import gzip

    raw = gzip.open(os.path.join(FIXTURES, "mnist", "t10k-images-idx3-ubyte.gz")).read()[16:]
    return np.frombuffer(raw, np.uint8)[: 28 * 28].reshape(28, 28)


@pytest.mark.parametrize("variant", ["inverted", "paper", "transparent", "inverted_200"])
def test_digits_as_people_take_them_become_light_on_dark_like_the_training_images(small_cfg, tmp_path, variant):
    from PIL import Image

    from data.datasets import read_photo

    digit = _digit()
    path = str(tmp_path / f"{variant}.png")
    if variant == "inverted":
        Image.fromarray(255 - digit).save(path)
    elif variant == "inverted_200":
        Image.fromarray(255 - digit).resize((200, 200), Image.BILINEAR).save(path)
    elif variant == "paper":  # grey paper, ink not quite black
        Image.fromarray((200 - 0.7 * digit).clip(0, 255).astype(np.uint8)).save(path)
    else:  # a black digit on a transparent background: the strokes are in alpha alone
        rgba = np.zeros((28, 28, 4), np.uint8)
        rgba[..., 3] = digit
        Image.fromarray(rgba, "RGBA").save(path)
    cfg = small_cfg()
    image, notes = read_photo(path, cfg.data)
    assert notes["inverted"] and notes.get("transparent", False) == (variant == "transparent")
    given = digit.astype(np.float32) / 126.0
    assert np.abs(image[0, 0] - given).mean() < (0.06 if variant == "inverted_200" else 0.002)
    as_given, _ = read_photo(path, small_cfg("pred.invert=never").data, "never")
    assert np.abs(as_given[0, 0] - given).mean() > 0.5  # what the net saw before


def test_a_digit_as_given_is_not_inverted_and_an_animation_says_its_first_frame_was_used(small_cfg, tmp_path):
    from PIL import Image

    from data.datasets import read_photo

    digit = _digit()
    path = str(tmp_path / "digit.gif")
    frames = [Image.fromarray(digit), Image.fromarray(np.zeros_like(digit))]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image, notes = read_photo(path, small_cfg().data)
    assert notes == {"inverted": False, "frames": 2}
    np.testing.assert_allclose(image[0, 0], digit / 126.0, atol=1e-6)
