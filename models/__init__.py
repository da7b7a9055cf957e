"""The model zoo: every network from the source articles, registered by name.

>>> import models
>>> model = models.create("resnet56")            # article 003's CIFAR ResNet-56
>>> models.list_models("resnet*")
"""

# Importing a family module registers its variants: the CIFAR families (cifar_resnet, preact_resnet),
# the ImageNet ones, and Fashion-MNIST's ResNet-50.
from models import cifar_resnet, fashion_resnet, googlenet, mobilenet, preact_resnet, resnet, vgg  # noqa: F401
from models.registry import (
    ModelArgumentError,
    ModelSpec,
    UnknownModelError,
    create,
    get_spec,
    list_models,
    register_model,
)

__all__ = [
    "ModelArgumentError",
    "ModelSpec",
    "UnknownModelError",
    "create",
    "get_spec",
    "list_models",
    "register_model",
]
