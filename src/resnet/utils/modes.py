"""The inference modes, engines and export formats of :func:`resnet.deploy.optimize`: one list each for the library and every command, free of
PyTorch so the command line can show them at once.

``eager`` (the model in evaluation mode, unchanged) is spelled ``none`` on the command line (``--optimize none``,
``serve --optimize none``); :func:`resnet.deploy.optimize` takes either spelling (:func:`canonical_mode`).
"""

from __future__ import annotations

EAGER = "eager"
NONE = "none"  # eager's command-line spelling
OPTIMIZED_MODES = ("fp32", "bf16", "int8")  # the modes that change how the network runs (`resnet bench` times these)
MODES = (EAGER, *OPTIMIZED_MODES)  # resnet.deploy.optimize's spelling
OPTIMIZE_MODES = (NONE, *OPTIMIZED_MODES)  # the commands' spelling (eval / predict / serve --optimize)
#: What runs an optimised mode (``optimize(..., engine=...)``, ``--engine``): ``auto`` measures, the others force
#: a family (:mod:`resnet.inference.engines`).
ENGINES = ("auto", "ours", "onnxruntime", "openvino", "pytorch")
OURS = "ours"
AUTO = "auto"
#: The test protocols (:mod:`resnet.inference.protocols`; ``resnet eval / predict --protocol``).
# Who made a checkpoint (its origin; "auto": read it off the file). Who publishes named weights is their publisher
# (resnet.weights.registry.PUBLISHERS). docs/dev/architecture.md, "Vocabulary".
ORIGINS = ("auto", "resnet", "torchvision", "timm", "akamaster")
PROTOCOLS = ("center", "flip", "shift", "10crop", "multiscale")
#: The export formats (:mod:`resnet.deploy.export`, ``resnet export --format``); TorchScript is deprecated and goes in
#: resnet :data:`TORCHSCRIPT_REMOVED_IN`.
EXPORT_FORMATS = ("pt2", "onnx", "openvino", "torchscript")
TORCHSCRIPT_REMOVED_IN = "0.3.0"
#: What runs an optimised mode when nothing is asked for: the one owner of that default for the library and every command.
DEFAULT_ENGINE = AUTO


def canonical_mode(mode: str) -> str:
    """``mode`` in :data:`MODES` spelling (``none`` is ``eager``); other values are returned as they are."""
    return EAGER if mode == NONE else mode


def is_eager(mode: str) -> bool:
    """Whether ``mode`` leaves the network as it is (``eager`` or ``none``)."""
    return canonical_mode(mode) == EAGER


def needs_images(mode: str, engine: str = OURS) -> bool:
    """Whether running ``mode`` requires sample images: int8 calibrates on them (``engine`` is kept for callers
    that ask about both; any engine's int8 calibrates)."""
    return not is_eager(mode) and canonical_mode(mode) == "int8"


def checks_on_images(mode: str, engine: str) -> bool:
    """Whether ``engine`` compares engines' answers with the float model's for ``mode`` on sample images, which it
    then uses when there are some (recorded training data, or images named): every engine but ours, in an
    optimised mode; without images, float modes are checked on random inputs of the network's size."""
    return not is_eager(mode) and engine != OURS
