"""Every model of the paper: the Neural Wave Machine, the Conv-LSTM, the CNN baselines and the U-Net."""

from twi_core.models.dynamics import NWMState, nwm_rollout_plain, nwm_step

__all__ = ["NWMState", "nwm_rollout_plain", "nwm_step"]
