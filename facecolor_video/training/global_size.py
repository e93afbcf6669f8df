"""Moving a trained head to global vectors of another VGG16 input size, without losing what it knows.

On a CPU, VGG16 at 224x224 is most of a training step (11 images/s against
the head's 63 at 128 px on a 2-core AMX machine); at 112x112 it runs at 78.
But the two sizes give different vectors (cosine 0.77, the norm about 1.9x),
so a head trained on one cannot be fed the other. Over many crops the 224
vector is close to an affine function of the 112 one, so the fusion layer's
weights on the global vector are re-expressed through that map: the head
starts at the new size nearly where it was, and fine-tuning does the rest.
"""

from __future__ import annotations

import torch

from ..model.network import ColorizationNet


@torch.no_grad()
def fit_affine(source: torch.Tensor, target: torch.Tensor, ridge: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, c) with target ~ source @ M.T + c, by ridge-regularised least squares (float64).

    ``ridge`` is relative to the mean squared source value, so it does not depend on the vectors' scale.
    """
    source, target = source.double(), target.double()
    design = torch.cat([source, torch.ones(len(source), 1, dtype=source.dtype)], dim=1)
    gram = design.T @ design
    penalty = ridge * gram.diagonal()[:-1].mean()
    gram[:-1, :-1] += penalty * torch.eye(source.shape[1], dtype=source.dtype)  # the offset is not penalised
    solution = torch.linalg.solve(gram, design.T @ target)
    return solution[:-1].T.contiguous(), solution[-1].contiguous()


@torch.no_grad()
def regrounded_head(head: ColorizationNet, old_vectors: torch.Tensor, new_vectors: torch.Tensor,
                    new_input_size: int, ridge: float = 1e-3) -> tuple[ColorizationNet, float]:
    """A copy of ``head`` that takes vectors of ``new_input_size``; and the map's relative error.

    ``old_vectors`` and ``new_vectors`` are the same crops' global vectors at
    the head's size and at the new one. The fusion layer's weights on the
    global channels W and its bias b become W M and b + W c, with
    old ~ M new + c (batch norm, if any, sits after the convolution and is kept).
    The relative error is ||old - (M new + c)|| / ||old||, averaged over the crops.
    """
    matrix, offset = fit_affine(new_vectors, old_vectors, ridge)
    predicted = new_vectors.double() @ matrix.T + offset
    error = ((predicted - old_vectors.double()).norm(dim=1) / old_vectors.double().norm(dim=1).clamp(min=1e-12)).mean()
    config = dict(head.config, global_input_size=int(new_input_size))
    moved = ColorizationNet(**config)
    state = {key: value.clone() for key, value in head.state_dict().items()}
    conv = head.fusion.conv[0]
    key = "fusion.conv.0"
    weight = state[f"{key}.weight"].double()  # (256, local + global, 1, 1)
    local = weight.shape[1] - matrix.shape[0]
    global_weight = weight[:, local:, 0, 0].clone()
    weight[:, local:, 0, 0] = global_weight @ matrix
    state[f"{key}.weight"] = weight.to(conv.weight.dtype)
    if conv.bias is not None:
        state[f"{key}.bias"] = (state[f"{key}.bias"].double() + global_weight @ offset).to(conv.bias.dtype)
    else:  # batch norm after the convolution: its running mean absorbs the offset
        state["fusion.conv.1.running_mean"] = state["fusion.conv.1.running_mean"] - (global_weight @ offset).float()
    moved.load_state_dict(state)
    return moved.train(head.training), float(error)
