"""The model zoo: every network from the source articles, registered by name.

>>> import models
>>> model = models.create("resnet56")            # article 003's CIFAR ResNet-56
>>> models.list_models("resnet*")
"""

from models.registry import ModelArgumentError, ModelSpec, UnknownModelError, create, get_spec, list_models, register_model

# Importing a family module registers its variants.
from models import cifar_resnet, preact_resnet  # noqa: E402,F401  (CIFAR families)
from models import fashion_resnet, googlenet, mobilenet, resnet, vgg  # noqa: E402,F401  (ImageNet families, Fashion-MNIST ResNet-50)

__all__ = ["ModelArgumentError", "ModelSpec", "UnknownModelError", "create", "get_spec", "list_models", "register_model"]
