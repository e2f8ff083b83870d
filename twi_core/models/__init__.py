"""Every model of the paper: the Neural Wave Machine, the Conv-LSTM, the CNN baselines and the U-Net.

>>> from twi_core.models import build, paper_config, count_parameters
>>> count_parameters(build(**paper_config("multi_mnist", "nwm", "linear")))
54855
"""

from twi_core.models.checkpoints import checkpoint_dict, load_checkpoint, read_checkpoint
from twi_core.models.inference import is_recurrent, logits_and_states
from twi_core.models.dynamics import LSTMState, NWMState, conv_lstm_step, nwm_rollout_plain, nwm_step
from twi_core.models.readouts import HEADS, READOUTS, num_frequency_bins
from twi_core.models.reference_counts import REFERENCE_COUNTS
from twi_core.models.registry import (
    DATASETS,
    MODELS,
    PAPER_VARIANTS,
    build,
    count_parameters,
    from_reference_config,
    load_reference_checkpoint,
    model_config,
    paper_config,
    paper_rows,
)

__all__ = [
    "DATASETS",
    "HEADS",
    "LSTMState",
    "MODELS",
    "NWMState",
    "PAPER_VARIANTS",
    "READOUTS",
    "REFERENCE_COUNTS",
    "build",
    "checkpoint_dict",
    "conv_lstm_step",
    "count_parameters",
    "from_reference_config",
    "is_recurrent",
    "load_checkpoint",
    "load_reference_checkpoint",
    "logits_and_states",
    "model_config",
    "nwm_rollout_plain",
    "nwm_step",
    "num_frequency_bins",
    "paper_config",
    "paper_rows",
    "read_checkpoint",
]
