"""The paper's segmentation metrics, exactly as the authors compute them, and the standard ones beside them.

Every metric takes predicted labels and targets, both integer tensors of shape ``(B, H, W)``, and returns one value per
image, a float64 tensor of shape ``(B,)``. An image without foreground has no foreground accuracy or IoU: its value is
NaN (the paper's definition divides by the number of foreground pixels). The losses take logits ``(B, n, H, W)``.

Definitions (``loss_metrics.py`` of the authors' repository, KempnerInstitute/traveling-waves-integrate), with ``G`` the
target, ``P`` the prediction, background 0:

=============================  ========================================================================================
``pixel_accuracy``             :math:`\\frac{1}{HW}\\sum_p [P_p = G_p]` (the paper's "Acc")
``fg_accuracy``                :math:`K/N`, :math:`N = \\#\\{G_p \\ne 0\\}`, :math:`K = \\#\\{G_p \\ne 0, P_p = G_p\\}`
                               (the paper's "FG-Acc")
``fg_iou``                     :math:`K / (2N - K) = a / (2 - a)` with :math:`a` the image's FG accuracy (the paper's
                               "FG-IoU": one-hot IoU over all classes, restricted to foreground *target* pixels)
``total_iou``                  one-hot micro IoU over all classes incl. background, :math:`a_{all} / (2 - a_{all})`
                               (the corrected "IoU" of the authors' later commit; the paper's Table 3)
``paper_total_iou_bitwise``    :math:`\\sum_p (P_p \\,\\&\\, G_p) / \\sum_p (P_p \\mid G_p)` on integer labels, the
                               authors' first "IoU" (bitwise AND/OR of label values; correct only for binary labels)
``macro_iou``                  beyond the paper: the mean over classes of the per-class IoU
                               :math:`|P{=}c \\cap G{=}c| / |P{=}c \\cup G{=}c|`, over classes present in ``P`` or ``G``
``pixel_loss``                 cross-entropy, mean over all pixels (the training loss, the paper's "Loss")
``fg_loss``                    cross-entropy, mean over foreground target pixels (``ignore_index=0``; "FG-Loss")
=============================  ========================================================================================

The counting uses ``torchmetrics``' samplewise stat scores where its definition matches the paper's (``science_facts.md``
§5); ``MulticlassJaccardIndex(ignore_index=0)`` does *not* match the paper's FG-IoU and is not used.

Examples
--------
>>> import torch
>>> target = torch.tensor([[[0, 1], [1, 2]]])
>>> pred = torch.tensor([[[0, 1], [2, 2]]])
>>> fg_accuracy(pred, target)            # 2 of 3 foreground pixels right
tensor([0.6667], dtype=torch.float64)
>>> fg_iou(pred, target)                 # 2 / (2*3 - 2)
tensor([0.5000], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_stat_scores

__all__ = [
    "pixel_accuracy", "fg_accuracy", "fg_iou", "total_iou", "paper_total_iou_bitwise", "macro_iou",
    "pixel_loss", "fg_loss", "IMAGE_METRICS", "LOSSES", "METRIC_NAMES", "evaluate",
]

BACKGROUND = 0  # the background label in every dataset of the paper


def _check_labels(pred: torch.Tensor, target: torch.Tensor) -> None:
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of integer labels (B, H, W); got {type(t).__name__}")
        if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
            raise TypeError(f"{name} must hold integer labels; got dtype {t.dtype} (take logits.argmax(1) first)")
        if t.dim() != 3:
            raise ValueError(f"{name} must have shape (B, H, W); got shape {tuple(t.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape; got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.numel() and (int(pred.min()) < 0 or int(target.min()) < 0):
        raise ValueError("labels must be non-negative integers")


def _num_classes(pred: torch.Tensor, target: torch.Tensor) -> int:
    # At least 2 so that torchmetrics accepts an all-background batch.
    return max(int(pred.max()), int(target.max()), 1) + 1 if pred.numel() else 2


def _micro_counts(pred: torch.Tensor, target: torch.Tensor, *, ignore_background: bool) -> tuple[torch.Tensor, ...]:
    """Per-image (tp, fp, fn, support) of the one-hot micro statistics, from torchmetrics' samplewise stat scores."""
    stats = multiclass_stat_scores(pred.long(), target.long(), num_classes=_num_classes(pred, target), average="micro",
                                   multidim_average="samplewise",
                                   ignore_index=BACKGROUND if ignore_background else None)  # (B, 5): tp fp tn fn sup
    stats = stats.to(torch.float64)
    return stats[:, 0], stats[:, 1], stats[:, 3], stats[:, 4]


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels whose label is right, per image (the paper's "Acc").

    Parameters
    ----------
    pred, target : torch.Tensor
        Integer labels, shape ``(B, H, W)``.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    return (pred == target).flatten(1).to(torch.float64).mean(dim=1)


def fg_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Foreground accuracy per image, :math:`K / N` (the paper's "FG-Acc"; authors' ``calc_acc``).

    :math:`N` counts target pixels that are not background and :math:`K` those of them predicted with the right label;
    false positives on background pixels do not count. NaN for an image without foreground.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    tp, _, _, support = _micro_counts(pred, target, ignore_background=True)
    return tp / support  # 0/0 -> NaN for an image without foreground


def fg_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The paper's foreground "IoU" per image, :math:`K / (2N - K) = a / (2 - a)` (authors' ``calc_iou``).

    The authors one-hot encode both label maps, zero them where the target is background and sum intersection and union
    over classes and pixels jointly: a right foreground pixel adds 1/1, a wrong one 0/2. The result is therefore a
    monotone function of the image's foreground accuracy :math:`a` (the authors' ``loss_metrics.py``). NaN without
    foreground.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    tp, fp, fn, _ = _micro_counts(pred, target, ignore_background=True)
    return tp / (tp + fp + fn)


def total_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Corrected total IoU per image: one-hot micro IoU over all classes incl. background, :math:`a_{all}/(2-a_{all})`.

    This is the total "IoU" of the authors' later commit (23fca4b) and of the paper's Table 3. Always defined.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    tp, fp, fn, _ = _micro_counts(pred, target, ignore_background=False)
    return tp / (tp + fp + fn)


def paper_total_iou_bitwise(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The authors' first total "IoU": bitwise AND over bitwise OR of the integer labels, per image.

    :math:`\\sum_p (P_p \\,\\&\\, G_p) / \\sum_p (P_p \\mid G_p)`. Reproduced because the results of commit ccfdc9e used it;
    it is an IoU only for labels in {0, 1} (with labels 7 and 8 a pixel adds 0 to the numerator and 15 to the
    denominator). NaN when both label maps are all background.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    p, g = pred.long().flatten(1), target.long().flatten(1)  # (B, H*W)
    inter = (p & g).sum(dim=1).to(torch.float64)
    union = (p | g).sum(dim=1).to(torch.float64)
    return inter / union


def macro_iou(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int | None = None,
              include_background: bool = True) -> torch.Tensor:
    """Standard per-class IoU averaged over classes, per image (not in the paper).

    For each class :math:`c` present in the prediction or the target of an image,
    :math:`IoU_c = |P{=}c \\cap G{=}c| / |P{=}c \\cup G{=}c|`; classes absent from both are skipped.

    Parameters
    ----------
    pred, target : torch.Tensor
        Integer labels, shape ``(B, H, W)``.
    num_classes : int, optional
        Number of classes; inferred from the labels when omitted.
    include_background : bool
        Whether class 0 takes part in the mean. Without it an image with no foreground in either map is NaN.

    Returns
    -------
    torch.Tensor
        float64, shape ``(B,)``.
    """
    _check_labels(pred, target)
    n = _num_classes(pred, target) if num_classes is None else num_classes
    if not isinstance(n, int) or n < 2 or (pred.numel() and n < _num_classes(pred, target)):
        raise ValueError(f"num_classes must be an int >= 2 covering every label; got {num_classes!r}")
    stats = multiclass_stat_scores(pred.long(), target.long(), num_classes=n, average=None,
                                   multidim_average="samplewise").to(torch.float64)  # (B, n, 5): tp fp tn fn sup
    tp, fp, fn = stats[..., 0], stats[..., 1], stats[..., 3]
    union = tp + fp + fn  # (B, n)
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.nan)
    if not include_background:
        iou = iou[:, 1:]
    return iou.nanmean(dim=1)


def _check_logits(logits: torch.Tensor, target: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.dtype.is_floating_point or logits.dim() != 4:
        raise TypeError(f"logits must be a float tensor (B, n_classes, H, W); got "
                        f"{getattr(logits, 'dtype', type(logits).__name__)} {tuple(getattr(logits, 'shape', ()))}")
    if target.dim() != 3 or target.shape[0] != logits.shape[0] or target.shape[1:] != logits.shape[2:]:
        raise ValueError(f"target must have shape (B, H, W) = {(logits.shape[0], *logits.shape[2:])}; "
                         f"got {tuple(target.shape)}")


_REDUCTIONS = ("mean", "none")


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Pixel-wise cross-entropy, the training loss (the paper's "Loss"; ``nn.CrossEntropyLoss()``).

    Parameters
    ----------
    logits : torch.Tensor
        float, shape ``(B, n_classes, H, W)``.
    target : torch.Tensor
        int64 labels, shape ``(B, H, W)``.
    reduction : {"mean", "none"}
        ``"mean"``: one scalar, the mean over all ``B*H*W`` pixels (differentiable). ``"none"``: the mean per image,
        shape ``(B,)``.
    """
    _check_logits(logits, target)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {list(_REDUCTIONS)}")
    if reduction == "mean":
        return F.cross_entropy(logits, target.long())
    return F.cross_entropy(logits, target.long(), reduction="none").flatten(1).mean(dim=1)


def fg_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over foreground target pixels only (the paper's "FG-Loss"; ``CrossEntropyLoss(ignore_index=0)``).

    Parameters
    ----------
    reduction : {"mean", "none"}
        ``"mean"``: the mean over the foreground pixels of the whole batch, as the authors log it (so it depends on how
        images are grouped into batches). ``"none"``: the mean per image, shape ``(B,)``, NaN without foreground.
    """
    _check_logits(logits, target)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {list(_REDUCTIONS)}")
    if reduction == "mean":
        return F.cross_entropy(logits, target.long(), ignore_index=BACKGROUND)
    per_pixel = F.cross_entropy(logits, target.long(), ignore_index=BACKGROUND, reduction="none").flatten(1)
    n_fg = (target != BACKGROUND).flatten(1).sum(dim=1)
    return per_pixel.sum(dim=1) / n_fg  # NaN where an image has no foreground


#: Per-image metrics of labels, by the name used in run records.
IMAGE_METRICS: Mapping[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "fg_accuracy": fg_accuracy,
    "fg_iou": fg_iou,
    "pixel_accuracy": pixel_accuracy,
    "total_iou": total_iou,
    "paper_total_iou_bitwise": paper_total_iou_bitwise,
    "macro_iou": macro_iou,
}

#: Losses of logits, by name.
LOSSES: Mapping[str, Callable[..., torch.Tensor]] = {"pixel_loss": pixel_loss, "fg_loss": fg_loss}

#: Every metric :func:`evaluate` returns.
METRIC_NAMES: tuple[str, ...] = (*LOSSES, *IMAGE_METRICS)


def _batches(data, batch_size: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    try:
        images, masks = data
    except (TypeError, ValueError):
        raise TypeError("data must unpack as (images, masks), e.g. a SegmentationData or a tuple of two tensors; "
                        f"got {type(data).__name__}") from None
    if len(images) != len(masks):
        raise ValueError(f"images and masks differ in length: {len(images)} vs {len(masks)}")
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size], masks[start:start + batch_size]


@torch.no_grad()
def evaluate(model: torch.nn.Module, data, *, batch_size: int = 64, device: str | torch.device | None = None
             ) -> dict[str, float]:
    """Mean metrics of ``model`` on ``data``, accumulated the way the authors do (their ``trainer.py``).

    Per-image metrics are averaged over images (images without foreground are left out of the foreground means instead
    of turning them into NaN). Losses are batch means weighted by batch size, as in the authors' ``eval_metrics``;
    unlike theirs the batches are taken in order, so the result does not depend on a shuffle.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(B, n_classes, H, W)`` from ``model(images)``. Put in eval mode for the call, then restored.
    data
        Anything that unpacks as ``images, masks``: float ``(N, C, H, W)`` and int64 ``(N, H, W)``.
    batch_size : int
        Images per forward pass.
    device : str or torch.device, optional
        Where to run; default: the device of the model's first parameter (CPU for a parameterless model).

    Returns
    -------
    dict
        ``{name: float}`` for every name in :data:`METRIC_NAMES`, plus ``n_images``.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    sums = {name: 0.0 for name in METRIC_NAMES}
    counts = {name: 0 for name in METRIC_NAMES}
    n_images = 0
    try:
        for images, masks in _batches(data, batch_size):
            images, masks = images.to(device), masks.to(device).long()
            logits = model(images)
            b = images.shape[0]
            n_images += b
            for name, loss in LOSSES.items():
                value = float(loss(logits.float(), masks))
                if value == value:  # a batch without any foreground has no FG loss
                    sums[name] += value * b
                    counts[name] += b
            pred = logits.argmax(dim=1)
            for name, metric in IMAGE_METRICS.items():
                values = metric(pred, masks)
                finite = ~torch.isnan(values)
                sums[name] += float(values[finite].sum())
                counts[name] += int(finite.sum())
    finally:
        model.train(was_training)
    result = {name: (sums[name] / counts[name] if counts[name] else float("nan")) for name in METRIC_NAMES}
    result["n_images"] = n_images
    return result
