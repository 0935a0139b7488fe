import gzip
import pickle

import numpy as np
import pytest
import torch
from helpers import write_cifar_batch
from tests.conftest import make_tiny_mnist, shared_path, write_idx

from cnnlab.data import vision
from cnnlab.data.vision import load_split, read_cifar_batch, read_idx
from cnnlab.errors import DataError


def test_idx_roundtrip_gz_and_plain(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    for compress in (True, False):
        path = write_idx(tmp_path / f"x{compress}", images, compress=compress)
        assert np.array_equal(read_idx(path), images)


def test_rewritten_gzip_header_accepted_by_content(tmp_path):
    """Debian's Fashion-MNIST files have other gzip headers; content decides, not md5."""
    labels = np.array([1, 2, 3], dtype=np.uint8)
    a = write_idx(tmp_path / "a.gz", labels, mtime=0)
    b = write_idx(tmp_path / "b.gz", labels, mtime=1234567)
    assert a.read_bytes() != b.read_bytes()
    assert np.array_equal(read_idx(a), read_idx(b))


def test_bad_magic_and_truncation_name_the_file(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress(b"\x01\x02\x03\x04" + b"\0" * 20))
    with pytest.raises(DataError, match="bad.gz.*magic"):
        read_idx(bad)
    good = write_idx(tmp_path / "t", np.zeros((2, 28, 28), np.uint8), compress=False)
    good.write_bytes(good.read_bytes()[:-5])
    with pytest.raises(DataError, match="t: size"):
        read_idx(good)


def test_missing_files_error_says_what_and_where(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    with pytest.raises(DataError) as info:
        load_split("mnist", "train", tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "MNIST/raw") in message
    assert "\n" not in message


def test_root_resolution_env_then_debian(tmp_path, monkeypatch):
    make_tiny_mnist(tmp_path / "env", n_train=20, n_test=10)
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    images, labels = load_split("mnist", "test")
    assert images.shape == (10, 1, 28, 28) and labels.dtype == torch.int64
    # Debian layout: /usr/share/datasets/fashion-mnist/<files> with no FashionMNIST/raw folder
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    make_tiny_mnist(tmp_path / "debian", n_train=20, n_test=12, folder="fashion-mnist")
    monkeypatch.setattr(vision, "DEBIAN_ROOT", tmp_path / "debian")
    images, _ = load_split("fashion-mnist", "test")
    assert len(images) == 12


def test_label_count_mismatch(tmp_path):
    raw = tmp_path / "MNIST/raw"
    write_idx(raw / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        load_split("mnist", "test", tmp_path)


def test_cifar_official_format_roundtrip(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        write_cifar_batch(folder / name, images, labels)
        expected.append((images, labels))
    images, labels = load_split("cifar10", "train", tmp_path)
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert np.array_equal(images[:4].numpy(), expected[0][0])
    assert labels[:4].tolist() == expected[0][1]
    test_images, _ = load_split("cifar10", "test", tmp_path)
    assert np.array_equal(test_images.numpy(), expected[-1][0])


def test_cifar_loader_refuses_code_in_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="refusing to load global builtins.print"):
        read_cifar_batch(path)


def test_real_mnist_and_fashion_mnist():
    root = shared_path("MNIST", "raw").parents[1]
    for name, first_labels in (("mnist", [5, 0, 4, 1, 9]), ("fashion-mnist", [9, 0, 0, 3, 0])):
        images, labels = load_split(name, "train", root)
        assert images.shape == (60000, 1, 28, 28) and images.dtype == torch.uint8
        assert labels[:5].tolist() == first_labels
        assert torch.bincount(labels).min() > 5000
        test_images, test_labels = load_split(name, "test", root)
        assert test_images.shape == (10000, 1, 28, 28) and len(test_labels) == 10000
