import keras
import numpy as np
import pytest

import models
from models import preact_resnet as family


@pytest.mark.slow  # 3,000 layers: ~17 s to build on 2 cores
def test_preact_resnet1001_builds_with_the_expected_parameters():
    deep = family.preact_resnet(1001)
    units = (1001 - 2) // 9  # the paper's 9n+2
    assert sum(1 for layer in deep.layers if isinstance(layer, keras.layers.Add)) == 3 * units
    # 1001 has 93 more identity units per stage than the registered 164. One unit of width f holds
    # f*f/4 + 9*(f/4)**2 + f/4*f conv weights and trainable BN gamma/beta for f + 2*f/4 channels:
    # 4,544 (f=64) + 17,792 (f=128) + 70,400 (f=256) = 92,736 trainable, and 1,344 moving statistics.
    spec = models.get_spec("preact_resnet164")
    extra = units - (164 - 2) // 9
    trainable = sum(int(np.prod(w.shape)) for w in deep.trainable_weights)
    assert trainable == spec.trainable + extra * 92_736  # 10.33M; the paper's table says 10.2M
    assert deep.count_params() - trainable == spec.non_trainable + extra * 1_344
