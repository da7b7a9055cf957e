import models


def test_option_a_shortcut_is_parameter_free():
    b = models.create("resnet20")
    a = models.create("resnet20", shortcut="A")
    projections = [layer for layer in b.layers if layer.name.endswith("_0_conv")]
    assert len(projections) == 2  # the two subsampling blocks
    assert b.count_params() - a.count_params() == sum(layer.count_params() for layer in projections)
