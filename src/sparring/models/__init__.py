"""Model adapters (what an attack may do to a model) and the model zoo."""

from sparring.models.base import (
    Access,
    Classifier,
    ClassifierWrapper,
    QueryBudget,
    RestrictedClassifier,
    check_batch,
    check_labels,
    describe_access,
)
from sparring.models.hooks import capture, feature_layer, find_layer, layer_features, param_layers
from sparring.models.io import load_skops, load_torch_model, save_torch_weights
from sparring.models.onnx_classifier import OnnxClassifier, export_onnx
from sparring.models.sklearn_classifier import SklearnClassifier
from sparring.models.torch_classifier import TorchClassifier
from sparring.models.transformed import InputTransform, TransformedClassifier
from sparring.models.zoo import ARCHITECTURES, MLP, EarlyExitCNN, SmallCNN, build, early_exit_cnn

__all__ = [
    "ARCHITECTURES",
    "MLP",
    "Access",
    "Classifier",
    "ClassifierWrapper",
    "EarlyExitCNN",
    "InputTransform",
    "OnnxClassifier",
    "QueryBudget",
    "RestrictedClassifier",
    "SklearnClassifier",
    "SmallCNN",
    "TorchClassifier",
    "TransformedClassifier",
    "build",
    "capture",
    "check_batch",
    "check_labels",
    "describe_access",
    "early_exit_cnn",
    "export_onnx",
    "feature_layer",
    "find_layer",
    "layer_features",
    "load_skops",
    "load_torch_model",
    "param_layers",
    "save_torch_weights",
]
