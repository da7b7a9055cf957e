"""bench.results: the per-image bits a training result records for each evaluation."""

import numpy as np
import pytest

from bench.results import decode_correct, encode_correct


@pytest.mark.parametrize("n", [1, 7, 8, 9, 10_000])
def test_per_image_bits_round_trip_at_any_length(n):
    right = np.random.default_rng(n).random(n) < 0.7
    text = encode_correct(right)
    assert len(text) == 4 * -(-((n + 7) // 8) // 3)  # base64 of one bit per image, packed
    np.testing.assert_array_equal(decode_correct(text, n), right)


@pytest.mark.parametrize(
    ("text", "n", "message"),
    [
        (encode_correct([True] * 16), 24, "16 bits recorded for 24 test images"),
        (encode_correct([True] * 16), 8, "16 bits recorded for 8 test images"),
        ("not base64!", 8, "not base64"),
    ],
)
def test_bits_that_do_not_fit_the_test_split_are_refused(text, n, message):
    with pytest.raises(ValueError, match=message):
        decode_correct(text, n)
