"""The one kind of model the DDIM-based nodes and the ε-loss trainers accept: ε-prediction on a discrete schedule."""

from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import EPS, ModelSamplingDiscrete


def check_epsilon_model(model: ModelPatcher, purpose: str = "DDIM inversion", also: str = "") -> None:
    """Raise a ValueError naming ``purpose`` unless the model predicts ε with a discrete (1000-step) noise schedule;
    ``also`` ("..., or a flow model") names the other kinds of model ``purpose`` accepts."""
    sampling = model.get_model_object("model_sampling")
    kind = type(sampling)
    if (
        isinstance(sampling, ModelSamplingDiscrete)
        and kind.calculate_denoised is EPS.calculate_denoised
        and kind.calculate_input is EPS.calculate_input
    ):
        return
    names = " + ".join(base.__name__ for base in kind.__mro__[1:] if base.__module__ == "comfy.model_sampling")
    accepted = f"an ε-prediction model with a discrete noise schedule (SD1.x, SD2.x-base, SDXL){also}"
    refused = "v-prediction, x0 and EDM models" if also else "v-prediction, x0, EDM and flow models"
    raise ValueError(
        f"model: {purpose} needs {accepted}; the connected model samples as {names or kind.__name__} ({refused} "
        "are not supported)"
    )
