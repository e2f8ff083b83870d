"""Metrics on hand-made masks whose answers are known (reference notes §6.1, science_facts §5)."""

from __future__ import annotations

import math

import pytest
import torch

from twi_core import metrics as M

# A 3x3 image: 4 foreground target pixels (labels 1 and 2), background elsewhere.
TARGET = torch.tensor([[[0, 1, 1],
                        [0, 2, 2],
                        [0, 0, 0]]])
# 3 of the 4 foreground pixels right, one predicted as background, and one false positive on background.
PRED = torch.tensor([[[0, 1, 1],
                      [3, 2, 0],
                      [0, 0, 0]]])


def test_pixel_accuracy_counts_all_pixels():
    assert M.pixel_accuracy(PRED, TARGET).tolist() == pytest.approx([7 / 9])


def test_fg_accuracy_ignores_background_false_positives():
    # K = 3 right among N = 4 foreground pixels; the false "3" on background does not count.
    assert M.fg_accuracy(PRED, TARGET).tolist() == pytest.approx([3 / 4])


def test_fg_iou_is_k_over_2n_minus_k_and_a_over_2_minus_a():
    value = M.fg_iou(PRED, TARGET)
    assert value.tolist() == pytest.approx([3 / (2 * 4 - 3)])
    a = M.fg_accuracy(PRED, TARGET)
    assert torch.allclose(value, a / (2 - a))


def test_fg_iou_identity_on_random_masks():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 6, (8, 16, 16), generator=g)
    pred = torch.where(torch.rand(8, 16, 16, generator=g) < 0.6, target, torch.randint(0, 6, (8, 16, 16), generator=g))
    a = M.fg_accuracy(pred, target)
    assert torch.allclose(M.fg_iou(pred, target), a / (2 - a))
    a_all = M.pixel_accuracy(pred, target)
    assert torch.allclose(M.total_iou(pred, target), a_all / (2 - a_all))


def test_total_iou_is_micro_one_hot_iou():
    # 7 right pixels of 9: every wrong pixel adds 0 to the intersection and 2 to the union.
    assert M.total_iou(PRED, TARGET).tolist() == pytest.approx([7 / (7 + 2 * 2)])


def test_bitwise_iou_weights_label_values():
    # Hand computation: AND sums 1+1+2 (+ 3&0, 2&0 = 0) = 4; OR sums 1+1+3+2+2 = 9.
    assert M.paper_total_iou_bitwise(PRED, TARGET).tolist() == pytest.approx([4 / 9])
    # Labels 8 vs 7: a wrong pixel adds 0 to the numerator and 15 to the denominator (reference notes §6.1).
    t = torch.tensor([[[8, 8]]])
    p = torch.tensor([[[7, 8]]])
    assert M.paper_total_iou_bitwise(p, t).tolist() == pytest.approx([8 / (15 + 8)])
    # For binary labels it is the ordinary foreground IoU.
    tb = torch.tensor([[[1, 1, 0, 0]]])
    pb = torch.tensor([[[1, 0, 1, 0]]])
    assert M.paper_total_iou_bitwise(pb, tb).tolist() == pytest.approx([1 / 3])


def test_predicting_all_background_scores_zero():
    pred = torch.zeros_like(TARGET)
    assert M.fg_accuracy(pred, TARGET).item() == 0.0
    assert M.fg_iou(pred, TARGET).item() == 0.0
    assert M.paper_total_iou_bitwise(pred, TARGET).item() == 0.0
    assert M.pixel_accuracy(pred, TARGET).item() == pytest.approx(5 / 9)


def test_image_without_foreground_is_nan_where_undefined():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    pred = target.clone()
    pred[1, 0, 0] = 2
    assert torch.isnan(M.fg_accuracy(pred, target)).all()
    assert torch.isnan(M.fg_iou(pred, target)).all()
    assert M.pixel_accuracy(pred, target).tolist() == pytest.approx([1.0, 15 / 16])
    assert M.total_iou(pred, target)[0].item() == 1.0
    bitwise = M.paper_total_iou_bitwise(pred, target)
    assert math.isnan(bitwise[0].item()) and bitwise[1].item() == 0.0
    assert torch.isnan(M.macro_iou(pred, target, include_background=False)[0])


def test_macro_iou_per_class_mean():
    # Per-class IoU by hand.
    # class 0: pred==0 at 5 pixels ((0,0),(1,2),(2,*)), target==0 at 5 pixels ((0,0),(1,0),(2,*)); inter 4, union 6.
    # class 1: inter 2, union 2 -> 1.  class 2: pred {(1,1)}, target {(1,1),(1,2)} -> 1/2.  class 3: 0/1 -> 0.
    expected = (4 / 6 + 1 + 0.5 + 0) / 4
    assert M.macro_iou(PRED, TARGET).tolist() == pytest.approx([expected])
    assert M.macro_iou(PRED, TARGET, include_background=False).tolist() == pytest.approx([(1 + 0.5 + 0) / 3])
    # Classes absent from both maps do not dilute the mean.
    assert M.macro_iou(PRED, TARGET, num_classes=11).tolist() == pytest.approx([expected])


def test_batch_gives_one_value_per_image():
    pred = torch.cat([PRED, torch.zeros_like(PRED)])
    target = torch.cat([TARGET, TARGET])
    for name, fn in M.IMAGE_METRICS.items():
        out = fn(pred, target)
        assert out.shape == (2,), name
        assert out.dtype == torch.float64, name


def test_losses_match_their_definitions():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 3, 3, generator=g)
    target = torch.cat([TARGET, torch.zeros_like(TARGET)])
    logp = torch.log_softmax(logits, dim=1)
    nll = -logp.gather(1, target[:, None]).squeeze(1)  # (B, H, W)
    assert M.pixel_loss(logits, target).item() == pytest.approx(nll.mean().item(), rel=1e-6)
    fg = target != 0
    assert M.fg_loss(logits, target).item() == pytest.approx(nll[fg].mean().item(), rel=1e-6)
    per_image = M.fg_loss(logits, target, reduction="none")
    assert per_image[0].item() == pytest.approx(nll[0][fg[0]].mean().item(), rel=1e-6)
    assert math.isnan(per_image[1].item())
    assert M.pixel_loss(logits, target, reduction="none").shape == (2,)


def test_bad_input_raises_with_a_useful_message():
    with pytest.raises(TypeError, match="integer labels"):
        M.fg_iou(PRED.float(), TARGET)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        M.fg_iou(PRED[0], TARGET[0])
    with pytest.raises(ValueError, match="same shape"):
        M.pixel_accuracy(PRED, TARGET[:, :2])
    with pytest.raises(ValueError, match="reduction"):
        M.fg_loss(torch.zeros(1, 3, 3, 3), TARGET, reduction="sum")


class _Oracle(torch.nn.Module):
    """Returns fixed logits that predict ``PRED``-like labels: the target with one pixel wrong per image."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        labels = x[:, 0].round().long()  # the label map is smuggled in as the image
        return torch.nn.functional.one_hot(labels, self.n_classes).permute(0, 3, 1, 2).float() * 10 + self.dummy


def test_evaluate_averages_per_image_metrics():
    masks = torch.cat([TARGET, TARGET, torch.zeros_like(TARGET)])
    preds = torch.cat([TARGET, PRED, torch.zeros_like(TARGET)])
    images = preds[:, None].float()
    result = M.evaluate(_Oracle(4), (images, masks), batch_size=2)
    assert set(M.METRIC_NAMES) <= set(result)
    assert result["n_images"] == 3
    # The image without foreground is left out of the foreground means.
    assert result["fg_accuracy"] == pytest.approx((1 + 3 / 4) / 2)
    assert result["pixel_accuracy"] == pytest.approx((1 + 7 / 9 + 1) / 3)
    with pytest.raises(ValueError, match="batch_size"):
        M.evaluate(_Oracle(4), (images, masks), batch_size=0)
