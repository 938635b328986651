"""The paper's experiments and the backbone study, each a function of one typed config:

    from resnet.analysis import DegradationConfig, run_degradation
    result = run_degradation(DegradationConfig(data="digits", depths=(8, 14), budget="tiny"))
    result.files  # figures, markdown table, JSON; result.data: what the JSON holds

``resnet experiment ...`` parses its options into the same configs and calls the same functions.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import exports, lazy_attributes

if TYPE_CHECKING:
    from .backbone_study import run_backbone_degradation
    from .configs import (BackboneStudyConfig, DegradationConfig, DepthTableConfig, ExperimentResult, GradientsConfig,
                          ResponsesConfig)
    from .measured_experiments import run_gradients, run_responses
    from .training_experiments import run_degradation, run_depth_table

_EXPORTS = exports({
    "backbone_study": ["run_backbone_degradation"],
    "configs": ["BackboneStudyConfig", "DegradationConfig", "DepthTableConfig", "ExperimentResult", "GradientsConfig",
                "ResponsesConfig"],
    "measured_experiments": ["run_gradients", "run_responses"],
    "training_experiments": ["run_degradation", "run_depth_table"],
})
__all__ = list(_EXPORTS)
__getattr__ = lazy_attributes(__name__, _EXPORTS)  # the configs need no PyTorch; the experiments do
