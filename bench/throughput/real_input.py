"""``--data real``: an input pipeline that decodes JPEGs on every step, so input stalls show.

Reads the CIFAR-10 JPEG copy that ``bench.data.cifar10_jpeg_dir`` checks and unpacks (the same
cache the training recipes use) and, unlike the training pipelines, does not cache decoded images:
file read, JPEG decode, augmentation (flip and pad-and-crop, ``bench.data.augment_fn``) and resize
to the model's input run in parallel for every batch, then batches are prefetched. Comparing a
benchmark's rate on this pipeline with its rate on device-resident synthetic batches tells whether
the host keeps the device fed.
"""

from __future__ import annotations

from pathlib import Path


def jpeg_files(
    split: str = "train", *, archive: str | None = None, cache_dir: str | None = None
) -> tuple[list[str], list[int]]:
    """Paths and label ids of one split of the unpacked CIFAR-10 JPEG tree (classes sorted = label ids)."""
    from bench.training.data import CIFAR10_CLASSES, cifar10_jpeg_dir

    root = Path(cifar10_jpeg_dir(archive, cache_dir, flag="--data-archive")) / split
    files, labels = [], []
    for label, name in enumerate(CIFAR10_CLASSES):
        found = sorted(str(p) for p in (root / name).glob("*.jpg"))
        files += found
        labels += [label] * len(found)
    return files, labels


def real_dataset(
    input_shape,
    batch_size: int,
    *,
    seed: int = 0,
    archive: str | None = None,
    cache_dir: str | None = None,
    split: str = "train",
):
    """An endless ``tf.data.Dataset`` of ``(float32 images of input_shape, int64 labels)`` batches."""
    import tensorflow as tf

    from bench.training.data import augment_fn

    height, width, channels = (int(d) for d in input_shape)
    files, labels = jpeg_files(split, archive=archive, cache_dir=cache_dir)
    augment = augment_fn({"flip": True, "pad_crop": 4})
    ds = tf.data.Dataset.from_tensor_slices((files, tf.constant(labels, tf.int64)))
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))

    def decode(example, r):
        path, label = example
        x = tf.ensure_shape(tf.io.decode_jpeg(tf.io.read_file(path), channels=3), (32, 32, 3))  # every CIFAR image
        x = tf.cast(x, tf.float32) / 255.0
        x = augment(x, r)
        if channels == 1:
            x = tf.image.rgb_to_grayscale(x)
        if (height, width) != (32, 32):
            x = tf.image.resize(x, (height, width))
        return tf.ensure_shape(x, (height, width, channels)), label

    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
