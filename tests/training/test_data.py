"""Data: the CIFAR-10 JPEG archive's checks and cache, ImageFolder reading, augmentations, pipelines on mock data."""

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from bench.errors import UsageError
from bench.training import data

REPO = Path(__file__).resolve().parents[2]
PER_CLASS = {"train": 2, "test": 1}
COUNTS = {"train": 20, "test": 10}  # images per split


def _jpeg(value):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_archive(path, *, classes=data.CIFAR10_CLASSES, per_class=PER_CLASS, prefix="CIFAR-10-images/"):
    with tarfile.open(path, "w:gz") as tar:
        for split, n in per_class.items():
            for label, cls in enumerate(classes):
                for i in range(n):
                    blob = _jpeg(label * 20)
                    info = tarfile.TarInfo(f"{prefix}{split}/{cls}/{i:04d}.jpg")
                    info.size = len(blob)
                    tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def archive(tmp_path):
    path = make_archive(tmp_path / "tiny.tar.gz")
    return path, data.sha256_of(path)


def test_extracts_once_after_checking_the_sha(archive, tmp_path, monkeypatch):
    path, sha = archive
    root = data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=sha, counts=COUNTS)
    assert root == tmp_path / "cache" / "cifar10_jpeg" / sha[:16]
    assert sorted(p.name for p in (root / "train").iterdir()) == list(data.CIFAR10_CLASSES)
    assert len(list(root.glob("test/*/*.jpg"))) == 10
    assert not list(root.parent.glob(".extract-*"))  # the temporary directory is gone

    def boom(*a, **k):
        raise AssertionError("extracted twice")

    monkeypatch.setattr(tarfile, "open", boom)
    assert data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=sha, counts=COUNTS) == root


def test_missing_archive(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        data.cifar10_jpeg_dir(tmp_path / "nope.tar.gz", tmp_path / "cache")


def test_a_missing_archive_names_the_callers_flag(tmp_path):
    with pytest.raises(UsageError, match=r"pass its path \(--archive or CIFAR10_JPEG_ARCHIVE\)"):
        data.cifar10_jpeg_dir(tmp_path / "nope.tar.gz", tmp_path / "cache")
    with pytest.raises(UsageError, match=r"pass its path \(--data-archive or CIFAR10_JPEG_ARCHIVE\)"):
        data.cifar10_jpeg_dir(tmp_path / "nope.tar.gz", tmp_path / "cache", flag="--data-archive")


def test_an_extraction_whose_process_died_is_removed_by_the_next(archive, tmp_path):
    path, sha = archive
    parent = tmp_path / "cache" / "cifar10_jpeg"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = parent / f".extract-{dead.stdout.strip()}-abc"  # that process has ended
    (stale / "train").mkdir(parents=True)
    live = parent / f".extract-{os.getppid()}-abc"  # a live process's extraction in progress
    live.mkdir()
    data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=sha, counts=COUNTS)
    assert not stale.exists() and live.is_dir()


def test_sigterm_during_extraction_leaves_no_partial_tree(archive, tmp_path):
    """SIGTERM (a job's timeout) mid-extraction: the temporary tree is removed, not left in the cache."""
    path, sha = archive
    started = tmp_path / "started"
    code = f"""
import sys, time
from pathlib import Path
sys.path.insert(0, {str(REPO)!r})
from bench.training import data

def slow(archive, tmp, *rest):
    (Path(tmp) / "train").mkdir()
    Path({str(started)!r}).touch()
    time.sleep(60)

data._extract = slow
data.cifar10_jpeg_dir({str(path)!r}, {str(tmp_path / "cache")!r}, sha256={sha!r}, counts={COUNTS!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert list((tmp_path / "cache" / "cifar10_jpeg").glob(".extract-*"))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert not list((tmp_path / "cache" / "cifar10_jpeg").glob(".extract-*"))


def test_corrupt_archive(archive, tmp_path):
    path, sha = archive
    with open(path, "ab") as f:
        f.write(b"x")
    with pytest.raises(UsageError, match="is corrupt: sha256"):
        data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=sha, counts=COUNTS)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UsageError, match="cannot be extracted"):
        data.cifar10_jpeg_dir(truncated, tmp_path / "cache", sha256=data.sha256_of(truncated), counts=COUNTS)
    assert not (tmp_path / "cache" / "cifar10_jpeg" / data.sha256_of(truncated)[:16]).exists()


def test_wrong_layout(tmp_path):
    path = make_archive(tmp_path / "nine.tar.gz", classes=data.CIFAR10_CLASSES[:9])
    with pytest.raises(UsageError, match="holds classes"):
        data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=data.sha256_of(path), counts=COUNTS)
    path = make_archive(tmp_path / "few.tar.gz", per_class={"train": 1, "test": 1})
    with pytest.raises(UsageError, match="holds 10 images, expected 20"):
        data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=data.sha256_of(path), counts=COUNTS)


def test_image_folder_labels_follow_cifar10_order(archive, tmp_path):
    path, sha = archive
    root = data.cifar10_jpeg_dir(path, tmp_path / "cache", sha256=sha, counts=COUNTS)
    pairs = list(data.image_folder(root, "train").as_numpy_iterator())
    assert len(pairs) == 20
    for x, y in pairs:  # class k was written as a flat image of value 20k
        assert x.shape == (32, 32, 3) and x.dtype == np.uint8
        assert abs(int(np.median(x)) - 20 * int(y)) <= 2


def test_real_archive_when_already_extracted():
    root = data.default_cache_dir() / "cifar10_jpeg" / data.CIFAR10_JPEG_SHA256[:16]
    if not (root / ".complete").is_file():
        pytest.skip(
            "the real CIFAR-10 JPEG copy is not extracted in this cache (python -m bench train smoke... does it)"
        )
    for split, per_class in (("train", 5000), ("test", 1000)):
        assert [len(list((root / split / c).glob("*.jpg"))) for c in data.CIFAR10_CLASSES] == [per_class] * 10
    x, y = next(data.load("cifar10_jpeg", "test").batch(64).as_numpy_iterator())
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.uint8 and set(y.tolist()) <= set(range(10))


def test_dataset_names():
    assert data.dataset_info("cifar10_jpeg").name == "cifar10_jpeg"
    assert data.dataset_info("mock_cifar10_jpeg", mock_examples=7).splits == {"train": 7, "test": 7}
    with pytest.raises(UsageError, match="unknown"):
        data.dataset_info("cifar11")


def test_tfds_dataset_that_cannot_be_prepared_is_a_clear_error(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    def offline(self, *a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(UsageError, match="--manual-dir"):
        data.load("fashion_mnist", "train", data_dir=str(tmp_path))


def _apply(spec, x, seed=(1, 2)):
    import tensorflow as tf

    return data.augment_fn(spec)(tf.constant(x), tf.constant(seed, tf.int64)).numpy()


def test_augmentations():
    x = np.arange(8 * 8 * 1, dtype=np.float32).reshape(8, 8, 1) + 1
    flips = {tuple(_apply({"flip": True}, x, (s, 0)).ravel()) for s in range(8)}
    assert flips == {tuple(x.ravel()), tuple(x[:, ::-1].ravel())}
    np.testing.assert_array_equal(_apply({"flip": True}, x, (3, 4)), _apply({"flip": True}, x, (3, 4)))  # stateless
    crops = [_apply({"pad_crop": 2}, x, (s, 1)) for s in range(10)]
    assert all(c.shape == x.shape for c in crops) and any((c == 0).any() for c in crops)
    for s in range(10):  # 'nearest' fill: no zeros, every value from the image
        shifted = _apply({"shift": 0.25}, x, (s, 7))
        assert shifted.min() >= 1 and set(shifted.ravel()) <= set(x.ravel())
    for s in range(10):
        cut = _apply({"cutout": 4}, x, (s, 9))
        zeros = int((cut == 0).sum())
        assert 0 < zeros <= 16
    with pytest.raises(UsageError):
        data.augment_fn({"blur": 1})


def test_pipelines_on_mock_data():
    def make():
        return data.pipelines(
            "mock_cifar10_jpeg",
            batch_size=8,
            augment={"flip": True, "pad_crop": 4},
            normalization="featurewise",
            seed=0,
            mock_examples=20,
        )

    p = make()
    assert p.info.name == "mock_cifar10_jpeg" and p.steps_per_epoch == 2
    train = list(p.train.as_numpy_iterator())
    assert [x.shape for x, _ in train] == [(8, 32, 32, 3)] * 2
    test = list(p.test.as_numpy_iterator())
    assert [len(y) for _, y in test] == [8, 8, 4]  # the whole test split, remainder included
    xs = np.concatenate([x for x, _ in test])
    assert abs(xs.mean()) < 0.05 and abs(xs.std() - 1) < 0.05  # featurewise stats of the (same) mock images
    again = list(make().train.as_numpy_iterator())
    np.testing.assert_array_equal(train[0][0], again[0][0])  # same seed, same batches
