"""The head a training run starts from: a fresh network, or a trained head given as ``--init``.

A trained head keeps what it knows: its batch norm must match the run's, and a
head without the variance channel grows one (the colour channels as they were,
the variance flat at a typical error) when the run asks for ``uncertainty``.
"""

from __future__ import annotations

import torch

from ..errors import InputError
from ..model.network import GLOBAL_INPUT_SIZE, ColorizationNet
from .config import TrainConfig

# log of a typical squared a*b* error (on the a*b* / 110 scale) of a trained head
INITIAL_LOG_VARIANCE = -4.5


def initial_head(config: TrainConfig, global_channels: int) -> ColorizationNet:
    """The head training starts from: a fresh one, or a copy of ``config.init`` (hash-checked like any model)."""
    if not config.init:
        return ColorizationNet(global_channels, config.dropout, config.batch_norm, config.uncertainty,
                               global_input_size=config.global_size or GLOBAL_INPUT_SIZE)
    from ..model.colorizer import load_head

    start, _ = load_head(config.init)
    if start.config["batch_norm"] != config.batch_norm:
        wanted = "with" if config.batch_norm else "without"
        raise InputError(f"{config.init}: this head was trained {'with' if start.config['batch_norm'] else 'without'} "
                         f"batch norm; --init cannot start a network {wanted} it from it")
    # a head that fades unsure colours keeps doing so, at its strength: fine-tuning adapts what the model does
    head = ColorizationNet(start.config["global_channels"], config.dropout, config.batch_norm,
                           config.uncertainty or start.uncertainty,
                           start.uncertainty_strength if start.uncertainty else 1.0)
    state = start.state_dict()
    if config.uncertainty and not start.uncertainty:
        # the colour channels start as they were; the variance channel starts flat at a typical error
        own = head.state_dict()
        for key, value in state.items():
            if own[key].shape != value.shape:
                grown = torch.zeros_like(own[key])
                grown[:2] = value
                if key.endswith("bias"):
                    grown[2] = INITIAL_LOG_VARIANCE
                state[key] = grown
    head.load_state_dict(state)
    return head
