"""Training data: tfds loaders, the local CIFAR-10 JPEG copy, and the tf.data pipelines recipes use.

Datasets, by the name results and baselines are keyed with:

- ``cifar10``, ``fashion_mnist``: tfds, from ``--data-dir`` (``TFDS_DATA_DIR``; a ``gs://`` path
  works on TPU hosts). Offline, put the original archives (``cifar-10-python.tar.gz``;
  ``train-images-idx3-ubyte.gz`` and the three other ``*-ubyte.gz`` files) in ``--manual-dir``:
  tfds's download manager takes a file it finds there instead of downloading it.
- ``cifar10_jpeg``: the 60,000 CIFAR-10 images re-encoded as JPEG (quality 75). The archive is
  checked against its sha256, extracted once into a cache directory and read with
  ``tfds.ImageFolder``. It is not CIFAR-10 (JPEG loses detail) and is never reported as such.
- ``mock_<name>``: ``tfds.testing.mock_data`` random examples with ``<name>``'s features, for
  tests and dry runs; results on it are named mock so they never meet a real baseline.

Augmentations are stateless random ops keyed by a per-example seed drawn from a seeded
``tf.data.Dataset.random`` stream, so a pipeline is reproducible under op determinism whatever
its parallelism. The shuffle order and that stream move on with each pass over the data (each
epoch); ``skip_epochs`` brings a new process's pipeline to where a resumed run left it. Nothing
here downloads at import time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.environment import REPO_ROOT
from bench.errors import UsageError, first_line

CIFAR10_JPEG_SHA256 = "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db"
CIFAR10_JPEG_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_JPEG_COUNTS = {"train": 50_000, "test": 10_000}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a recipe needs to know about a dataset before reading it."""

    name: str  # the name results are keyed by
    tfds_name: str | None  # the tfds builder behind it (None: read from local files)
    input_shape: tuple[int, int, int]
    classes: int
    splits: dict[str, int]  # split -> number of examples
    train_split: str = "train"
    test_split: str = "test"


DATASETS = {
    "cifar10": DatasetInfo("cifar10", "cifar10", (32, 32, 3), 10, {"train": 50_000, "test": 10_000}),
    "fashion_mnist": DatasetInfo("fashion_mnist", "fashion_mnist", (28, 28, 1), 10, {"train": 60_000, "test": 10_000}),
    "cifar10_jpeg": DatasetInfo("cifar10_jpeg", None, (32, 32, 3), 10, dict(CIFAR10_JPEG_COUNTS)),
}
MOCK_PREFIX = "mock_"


def dataset_info(name: str, *, mock_examples: int | None = None) -> DatasetInfo:
    """The ``DatasetInfo`` for ``name`` (``mock_<name>`` for mock data); unknown names are a ``UsageError``."""
    base = name[len(MOCK_PREFIX) :] if name.startswith(MOCK_PREFIX) else name
    if base not in DATASETS:
        valid = ", ".join(sorted(DATASETS)) + f" (or {MOCK_PREFIX}<name> for mock data)"
        raise UsageError(f"dataset {name!r} is unknown; valid: {valid}")
    info = DATASETS[base]
    if base != name:
        n = mock_examples or 64
        info = dataclasses.replace(info, name=name, splits={s: n for s in info.splits})
    return info


# ---------------------------------------------------------------------------------------------
# The CIFAR-10 JPEG copy


def default_cache_dir() -> Path:
    """``$BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/cnn-bench``, else ``~/.cache/cnn-bench``."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return Path(os.environ["BENCH_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "cnn-bench"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_archive(flag: str, archive: str | os.PathLike, *, sha256: str | None = CIFAR10_JPEG_SHA256) -> Path:
    """``archive`` if it is the CIFAR-10 JPEG archive (a file with the expected sha256; any file
    when ``sha256`` is None), else a one-line ``UsageError`` naming ``flag``: checked before any
    work, since an extracted copy in the cache would otherwise hide a wrong one."""
    path = Path(archive).expanduser()
    if not path.is_file():
        raise UsageError(f"{flag} {str(path)!r} is not a file")
    if sha256 is None:
        return path
    try:
        actual = sha256_of(path)
    except OSError as e:
        raise UsageError(f"{flag} {str(path)!r} cannot be read ({e.strerror or e})") from None
    if actual != sha256:
        raise UsageError(f"{flag} {str(path)!r} is corrupt: sha256 {actual[:16]}..., expected {sha256[:16]}...")
    return path


def default_archive() -> Path:
    """The archive ``cifar10_jpeg_dir`` reads when given none: ``$CIFAR10_JPEG_ARCHIVE``, else
    ``../shared/data/cifar10-jpeg.tar.gz`` next to the repository."""
    return Path(os.environ.get("CIFAR10_JPEG_ARCHIVE") or CIFAR10_JPEG_ARCHIVE).expanduser()


def _target(cache_dir: str | os.PathLike | None, sha256: str) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    return root / "cifar10_jpeg" / sha256[:16]


def extracted(cache_dir: str | os.PathLike | None = None, *, sha256: str = CIFAR10_JPEG_SHA256) -> Path | None:
    """The complete extracted tree in the cache (``cifar10_jpeg_dir``'s), or None when there is none yet."""
    target = _target(cache_dir, sha256)
    marker = target / ".complete"
    return target if marker.is_file() and marker.read_text().strip() == sha256 else None


EXTRACT_PREFIX = ".extract-"  # + "<pid>-": an extraction in progress, by the process with that pid


def _remove_stale_extractions(parent: Path) -> None:
    """Remove the ``.extract-<pid>-*`` trees whose process is gone (killed mid-extraction, SIGKILL
    included): nothing else would, and each is tens of MB. A live process's tree is left alone."""
    for tmp in parent.glob(EXTRACT_PREFIX + "*"):
        pid = tmp.name[len(EXTRACT_PREFIX) :].partition("-")[0]
        if not pid.isdecimal() or not _alive(int(pid)):  # an older, pid-less name: no owner to wait for
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def cifar10_jpeg_dir(
    archive: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    sha256: str = CIFAR10_JPEG_SHA256,
    counts: dict[str, int] | None = None,
    flag: str = "--archive",
) -> Path:
    """The unpacked CIFAR-10 JPEG tree (``train/<class>/*.jpg``, ``test/<class>/*.jpg``).

    ``archive``: the tarball (default ``default_archive()``). It is extracted once, after its sha256
    is checked, into ``<cache_dir>/cifar10_jpeg/<sha256[:16]>`` (``cache_dir`` defaults to
    ``default_cache_dir()``); later calls return that directory at once. Extraction goes to a
    temporary directory (``.extract-<pid>-*``) renamed into place, so an interrupted one is never
    mistaken for a complete tree; it is removed on SIGTERM too, and a later extraction removes those
    whose process died. A missing or corrupt archive, or one with the wrong layout, is a
    ``UsageError`` (a missing one names ``flag``, the caller's option for the archive). ``sha256`` and
    ``counts`` (images per split) describe the expected archive; tests pass small ones.
    """
    from bench import processes

    archive = Path(archive).expanduser() if archive else default_archive()
    target = _target(cache_dir, sha256)
    if (done := extracted(cache_dir, sha256=sha256)) is not None:
        return done
    if not archive.is_file():
        raise UsageError(
            f"CIFAR-10 JPEG archive {str(archive)!r} does not exist; pass its path ({flag} or CIFAR10_JPEG_ARCHIVE)"
        )
    actual = sha256_of(archive)
    if actual != sha256:
        raise UsageError(
            f"CIFAR-10 JPEG archive {str(archive)!r} is corrupt: sha256 {actual[:16]}..., expected {sha256[:16]}..."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_extractions(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f"{EXTRACT_PREFIX}{os.getpid()}-", dir=target.parent))
    try:
        with processes.sigterm_exits():  # SIGTERM runs the ``finally`` below rather than leaving ``tmp``
            _extract(archive, tmp, target, sha256, counts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract(archive: Path, tmp: Path, target: Path, sha256: str, counts: dict[str, int] | None) -> None:
    """``archive`` unpacked into ``tmp``, its layout checked, and its tree renamed to ``target``."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise UsageError(f"CIFAR-10 JPEG archive {str(archive)!r} cannot be extracted: {e}") from None
    tree = _find_split_root(tmp)
    for split, expected in (counts or CIFAR10_JPEG_COUNTS).items():
        classes = sorted(p.name for p in (tree / split).iterdir() if p.is_dir()) if (tree / split).is_dir() else []
        if tuple(classes) != CIFAR10_CLASSES:
            raise UsageError(
                f"CIFAR-10 JPEG archive {str(archive)!r}: {split}/ holds classes {classes}, expected {list(CIFAR10_CLASSES)}"
            )
        count = sum(1 for _ in (tree / split).glob("*/*.jpg"))
        if count != expected:
            raise UsageError(
                f"CIFAR-10 JPEG archive {str(archive)!r}: {split}/ holds {count} images, expected {expected}"
            )
    (tree / ".complete").write_text(sha256 + "\n")
    if target.exists():  # a stale, incomplete tree from an older layout
        shutil.rmtree(target)
    os.replace(tree, target)


def _find_split_root(path: Path) -> Path:
    """The directory holding ``train/`` and ``test/`` (the archive may wrap them in one folder)."""
    for candidate in (path, *sorted(p for p in path.iterdir() if p.is_dir())):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise UsageError("CIFAR-10 JPEG archive does not hold train/ and test/ folders")


# ---------------------------------------------------------------------------------------------
# Loading: (image uint8 HxWxC, label int64) datasets


def load(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    archive: str | None = None,
    cache_dir: str | None = None,
    mock_examples: int | None = None,
):
    """``tf.data.Dataset`` of ``(image uint8, label int64)`` for one split of dataset ``name``."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    info = dataset_info(name, mock_examples=mock_examples)
    if split not in info.splits:
        raise UsageError(f"dataset {name!r} has no split {split!r}; valid: {', '.join(info.splits)}")
    base = name[len(MOCK_PREFIX) :] if name.startswith(MOCK_PREFIX) else name
    if name.startswith(MOCK_PREFIX):
        tfds_name = DATASETS[base].tfds_name or "cifar10"  # cifar10_jpeg has cifar10's features
        with tfds.testing.mock_data(num_examples=info.splits[split]):
            ds = tfds.load(tfds_name, split=split, as_supervised=True, shuffle_files=False)
        # mock images are random bytes; make sure shape/dtype match the real data
        return ds.map(lambda x, y: (tf.ensure_shape(tf.cast(x, tf.uint8), info.input_shape), tf.cast(y, tf.int64)))
    if base == "cifar10_jpeg":
        ds = image_folder(cifar10_jpeg_dir(archive, cache_dir), split, info.input_shape)
    else:
        ds = _load_tfds(info.tfds_name, split, data_dir=data_dir, manual_dir=manual_dir)
    return ds.map(lambda x, y: (tf.ensure_shape(x, info.input_shape), tf.cast(y, tf.int64)))


def image_folder(root: Path, split: str, input_shape=(32, 32, 3), classes: Sequence[str] = CIFAR10_CLASSES):
    """One split of an unpacked ``<split>/<class>/*.jpg`` tree via ``tfds.ImageFolder``, with its
    label names checked against ``classes`` (folder order is label order)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.ImageFolder(str(root), shape=tuple(input_shape), dtype=tf.uint8)
    names = tuple(builder.info.features["label"].names)
    if names != tuple(classes):
        raise UsageError(f"{root}: classes read as {list(names)}, expected {list(classes)}")
    return builder.as_dataset(split=split, shuffle_files=False, as_supervised=True)


def _load_tfds(tfds_name: str, split: str, *, data_dir: str | None, manual_dir: str | None):
    import tensorflow_datasets as tfds

    data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or None
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # network, checksum and file errors come in many types
            hint = (
                "put the original archive(s) in --manual-dir"
                if not manual_dir
                else f"check that {manual_dir!r} holds the original archive(s)"
            )
            raise UsageError(
                f"tfds dataset {tfds_name!r} is not prepared under {builder.data_dir!r} and could not be "
                f"prepared ({first_line(e, limit=200)}); {hint}, or point --data-dir at a prepared copy"
            ) from None
    return builder.as_dataset(split=split, shuffle_files=False, as_supervised=True)


# ---------------------------------------------------------------------------------------------
# Normalisation and augmentation


def channel_stats(ds, channels: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a dataset's images, in [0, 1] units (featurewise normalisation)."""
    import numpy as np

    total = np.zeros(channels, np.float64)
    total_sq = np.zeros(channels, np.float64)
    count = 0
    for x, _ in ds.batch(4096).as_numpy_iterator():
        x = x.astype(np.float64).reshape(-1, channels) / 255.0
        total += x.sum(0)
        total_sq += (x * x).sum(0)
        count += x.shape[0]
    mean = total / max(count, 1)
    std = np.sqrt(np.maximum(total_sq / max(count, 1) - mean * mean, 1e-12))
    return mean.tolist(), std.tolist()


def normalizer(kind: str, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
    """uint8 image -> float32: 'rescale' (x/255) or 'featurewise' ((x/255 - mean) / std per channel)."""
    import tensorflow as tf

    if kind == "rescale":
        return lambda x: tf.cast(x, tf.float32) / 255.0
    if kind == "featurewise":
        if mean is None or std is None:
            raise ValueError("featurewise normalisation needs the training set's mean and std")
        m = tf.constant(mean, tf.float32)
        s = tf.constant(std, tf.float32)
        return lambda x: (tf.cast(x, tf.float32) / 255.0 - m) / s
    raise UsageError(f"normalisation {kind!r} is invalid; valid: rescale, featurewise")


AUGMENTATIONS = ("flip", "pad_crop", "shift", "cutout")


def augment_fn(spec: dict):
    """(float image, seed[2]) -> augmented image, from a recipe's augmentation dict.

    ``{"flip": True}``: random horizontal flip. ``{"pad_crop": 4}``: zero-pad 4 pixels and crop
    back at random. ``{"shift": 0.125}``: translate by up to 12.5 % of the size in whole pixels,
    filling with the nearest edge pixel (ImageDataGenerator's ``width/height_shift_range`` with
    its default ``fill_mode='nearest'``). ``{"cutout": 16}``: zero a 16x16 square centred
    anywhere on the image (DeVries & Taylor 2017; the square may hang over the border).
    """
    import tensorflow as tf

    unknown = set(spec) - set(AUGMENTATIONS)
    if unknown:
        raise UsageError(f"augmentation(s) {sorted(unknown)} are unknown; valid: {', '.join(AUGMENTATIONS)}")

    def apply(x, seed):
        seeds = tf.random.experimental.stateless_split(seed, 4)
        h, w = x.shape[0], x.shape[1]
        if spec.get("flip"):
            x = tf.image.stateless_random_flip_left_right(x, seeds[0])
        if spec.get("pad_crop"):
            p = int(spec["pad_crop"])
            x = tf.pad(x, [[p, p], [p, p], [0, 0]])
            x = tf.image.stateless_random_crop(x, [h, w, x.shape[-1]], seeds[1])
        if spec.get("shift"):
            dy_max, dx_max = round(float(spec["shift"]) * h), round(float(spec["shift"]) * w)
            d = tf.random.stateless_uniform(
                [2], seeds[2], minval=-max(dy_max, dx_max), maxval=max(dy_max, dx_max) + 1, dtype=tf.int32
            )
            dy = tf.clip_by_value(d[0], -dy_max, dy_max)
            dx = tf.clip_by_value(d[1], -dx_max, dx_max)
            x = tf.gather(x, tf.clip_by_value(tf.range(h) - dy, 0, h - 1), axis=0)
            x = tf.gather(x, tf.clip_by_value(tf.range(w) - dx, 0, w - 1), axis=1)
        if spec.get("cutout"):
            size = int(spec["cutout"])
            c = tf.random.stateless_uniform([2], seeds[3], minval=0, maxval=tf.int32.max, dtype=tf.int32)
            cy, cx = c[0] % h, c[1] % w
            ys = tf.range(h)[:, None]
            xs = tf.range(w)[None, :]
            inside = (tf.abs(ys - cy) * 2 < size) & (tf.abs(xs - cx) * 2 < size)
            x = x * tf.cast(~inside, x.dtype)[:, :, None]
        return x

    return apply


@dataclasses.dataclass
class Pipelines:
    """The train and test datasets a recipe trains and evaluates on, and what built them."""

    train: object  # tf.data.Dataset of (float image, label) batches, finite (one epoch)
    test: object
    steps_per_epoch: int
    train_examples: int
    test_examples: int
    info: DatasetInfo
    normalization: dict
    # seed -> another train pipeline built the same way, with seed generators of its own: at the
    # run's seed its first batch is the first batch training sees, read without drawing from the
    # training pipeline's streams (each iterator of ``train`` draws the next epoch's order).
    fresh_train: Callable[[int], object] | None = None


def pipelines(
    name: str,
    *,
    batch_size: int,
    augment: dict,
    normalization: str,
    seed: int,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    archive: str | None = None,
    cache_dir: str | None = None,
    mock_examples: int | None = None,
    shuffle_buffer: int | None = None,
    drop_remainder: bool = True,
) -> Pipelines:
    """cache -> shuffle -> parallel augmentation -> batch -> prefetch, for a recipe's training;
    the test split is normalised only, batched without dropping the remainder (every example counts)."""
    import tensorflow as tf

    info = dataset_info(name, mock_examples=mock_examples)
    kwargs = dict(
        data_dir=data_dir, manual_dir=manual_dir, archive=archive, cache_dir=cache_dir, mock_examples=mock_examples
    )
    train_raw = load(name, info.train_split, **kwargs).cache()
    test_raw = load(name, info.test_split, **kwargs).cache()
    n_train = info.splits[info.train_split]
    if batch_size > n_train and drop_remainder:
        raise UsageError(f"batch size {batch_size} exceeds the {n_train} training examples of {name!r}")
    norm = {"kind": normalization}
    if normalization == "featurewise":
        norm["mean"], norm["std"] = channel_stats(train_raw, info.input_shape[-1])
    to_float = normalizer(normalization, norm.get("mean"), norm.get("std"))
    aug = augment_fn(augment or {})
    has_aug = any(augment.get(k) for k in AUGMENTATIONS) if augment else False

    def train_map(example, r):
        x, y = example
        x = to_float(x)
        if has_aug:
            x = aug(x, r)
        return x, y

    def train_chain(seed: int):
        # One int64 per example, a fresh stream each epoch, fixed by the seed: the augmentation seed.
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        train = train_raw.shuffle(shuffle_buffer or n_train, seed=seed, reshuffle_each_iteration=True)
        train = tf.data.Dataset.zip((train, randoms))
        train = train.map(train_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return train.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)

    test = test_raw.map(lambda x, y: (to_float(x), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    test = test.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    steps = n_train // batch_size if drop_remainder else -(-n_train // batch_size)
    return Pipelines(train_chain(seed), test, steps, n_train, info.splits[info.test_split], info, norm, train_chain)


def skip_epochs(train, epochs: int) -> None:
    """Advance ``train`` (a ``Pipelines.train``) as ``epochs`` finished passes over it have, without
    reading a batch: each pass draws its shuffle order and augmentation stream from seed generators
    when its iterator is made, so making ``epochs`` iterators and dropping them puts the next pass
    where an uninterrupted run has it. A resumed run then sees the data of the epoch it resumes."""
    for _ in range(epochs):
        iter(train)
