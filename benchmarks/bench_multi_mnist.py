"""The Multi-MNIST NWM training step (C = 16, 128×128, T = 100), side by side in one process: twi_core's fast path,
its plain path, and (where their code is at hand) the authors' model, with the ratios and the gradient checks.

Usage::

    python benchmarks/bench_multi_mnist.py                                  # B = 4, 3 interleaved repeats
    python benchmarks/bench_multi_mnist.py --authors ~/src/traveling-waves-integrate --json book/_data/perf_mm.json
    python benchmarks/bench_multi_mnist.py --smoke                          # CI: B = 1, 32×32, T = 10

The Performance appendix shows every ``book/_data/perf_mm*.json`` side by side, one per machine measured (e.g.
``perf_mm_intel_xeon.json``): the ratios differ between CPUs.

A step is forward, cross-entropy and backward (the optimiser's update is the same for all three). ``--authors`` is a
checkout of KempnerInstitute/traveling-waves-integrate, kept outside this repository: its ``utils.make_model`` builds
their ``cornn_model2`` with the configuration of their Multi-MNIST script (``linear_smaller4``, 16 hidden channels),
our fast model's weights are loaded into it (:func:`twi_core.models.registry.load_reference_checkpoint` maps the
names), and the three models see the same batch, so their logits and gradients must agree as well as their losses.
Without it (or ``$TWI_AUTHORS_REPO``) the authors' column is left out. Timings are medians of interleaved calls
(fast, plain, authors, fast, ...); the machine is shared, so read the ratios. Where the C library runs the fast path,
``fast_torch_mix`` is the same step with the head's channel mixing as torch GEMMs instead of the library's kernels
(:func:`twi_core.models._native.mix_absorb`), so the table also shows what those kernels buy. All three run with denormals flushed
to zero (:mod:`twi_core._fp`, as training does): with torch's default the decaying waves reach the denormal range
and the plain and authors' steps slow down about twelvefold, which would flatter the fast path; ``--with-denormals``
times the authors' step once that way too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch

from twi_core._fp import flush_denormals
from twi_core.benchmarking import _batch, _step, compare_models, machine, model_pair, save_results, time_interleaved
from twi_core.models import _native, engine
from twi_core.models.registry import paper_config, reference_key_map


def _config(smoke: bool) -> dict:
    cfg = paper_config("multi_mnist", "nwm", "linear")
    if smoke:
        cfg.update(image_size=32, steps=10)
    return cfg


def authors_model(repo: Path, cfg: dict, ours: torch.nn.Module) -> torch.nn.Module:
    """The authors' Multi-MNIST NWM from their checkout, holding ``ours``'s weights (their names, their code)."""
    repo = Path(repo).expanduser().resolve()
    if not (repo / "utils.py").is_file() or not (repo / "cornn_model2.py").is_file():
        raise SystemExit(f"--authors {repo}: not a checkout of traveling-waves-integrate (no utils.py / cornn_model2.py)")
    steps, c = cfg["steps"], cfg["hidden_channels"]
    sys.path.insert(0, str(repo))  # their factory imports its modules by bare name, also while it builds
    try:
        from utils import make_model

        net = make_model(torch.device("cpu"), "cornn_model2", cfg["num_classes"], cfg["image_size"], cfg["dt"], 0,
                         steps, cfg["in_channels"], cfg["mid_channels"], c, 3, cfg["image_size"], "op", "lstm", 16,
                         "linear_smaller4")
    finally:
        sys.path.remove(str(repo))
    mapping = reference_key_map("nwm", net.state_dict().keys())  # their key -> ours
    state = ours.state_dict()
    net.load_state_dict({k: state[v] for k, v in mapping.items()}, strict=True)
    return _Logits(net)


class _Logits(torch.nn.Module):
    """The authors' model returns (logits, extras); the step needs the logits."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, tuple) else out


def _with_torch_mixing(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One step of the fast path with the C library's head-mixing kernels turned off (``engine._Mix`` then uses
    torch's GEMMs, as before those kernels existed)."""
    saved = _native.mix_supported
    _native.mix_supported = lambda *args, **kwargs: False
    try:
        return _step(model, x, target)
    finally:
        _native.mix_supported = saved


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--authors", type=Path, default=os.environ.get("TWI_AUTHORS_REPO") or None,
                        help="a checkout of the authors' repository, outside this one (default $TWI_AUTHORS_REPO)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--with-denormals", action="store_true",
                        help="also time the authors' step once with denormals kept (torch's default; slow)")
    parser.add_argument("--smoke", action="store_true", help="B = 1, 32x32, T = 10, one repeat (CI)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.batch, args.repeats = 1, 1
    with flush_denormals() as flushed:
        result, models, (x, target) = run(args)
    result["flush_denormals"] = flushed
    if args.with_denormals and "authors" in models:  # the authors' code as it runs by default, once
        model = models["authors"]
        result["authors_denormals_s"] = time_interleaved({"a": lambda: _step(model, x, target)}, repeats=1,
                                                       warmup=0)["a"][0]
        print(f"authors with denormals kept (torch's default): {result['authors_denormals_s']:.2f} s "
              f"({result['authors_denormals_s'] / result['fast_s']:.1f}x the fast path)")
    if args.json:
        save_results(args.json, result)
    return 0


def run(args) -> tuple[dict, dict, tuple[torch.Tensor, torch.Tensor]]:
    """Build the models, check them against each other, time them, print the table; return the results, the models
    and the batch."""
    cfg = _config(args.smoke)
    fast, plain = model_pair(cfg)
    models = {"fast": fast, "plain": plain}
    if args.authors:
        models["authors"] = authors_model(args.authors, cfg, fast)
    if args.smoke:
        x, target = _batch(cfg, args.batch)
    else:  # a batch of the training split: uniform noise in every pixel drives dynamics no image does
        from twi_core import data

        x, target = data.load("multi_mnist", "train", n=args.batch)
    kernels = engine._kernels(False, torch.zeros(1, cfg["hidden_channels"], cfg["image_size"], cfg["image_size"]))
    result = {"machine": machine(), "batch": args.batch, "config": cfg, "kernels": kernels.name}
    # fast and plain against each other, and each against the plain path in float64 on the first image: the rounding
    # of float32 alone, amplified over T steps, is the scale a fast-vs-plain difference must be read on
    result.update(compare_models(fast, plain, x, target))
    result.update({k: v for k, v in compare_models(fast, plain, x[:1], target[:1], float64=True).items()
                   if k.endswith("fp64")})
    if "authors" in models:  # the same weights and batch: their logits and gradients against the plain path's
        logits_a, logits_p = _step(models["authors"], x, target), _step(plain, x, target)
        ours = dict(plain.named_parameters())
        theirs = dict(models["authors"].net.named_parameters())
        mapping = reference_key_map("nwm", theirs.keys())
        result["authors_logits_rel"] = _rel(logits_a, logits_p)
        result["authors_grad_rel_max"] = max(_rel(p.grad, ours[mapping[k]].grad) for k, p in theirs.items())
    steps = {k: (lambda m=m: _step(m, x, target)) for k, m in models.items()}
    if kernels.native:  # the same fast path with the head's channel mixing as torch GEMMs: what the C kernels buy
        steps = {"fast": steps.pop("fast"), "fast_torch_mix": lambda: _with_torch_mixing(fast, x, target), **steps}
    times = time_interleaved(steps, repeats=args.repeats)
    result["times"] = times
    med = {k: statistics.median(v) for k, v in times.items()}
    result.update({f"{k}_s": v for k, v in med.items()})
    print(f"Multi-MNIST NWM-linear training step, B = {args.batch}, {cfg['image_size']}x{cfg['image_size']}, "
          f"T = {cfg['steps']}, C = {cfg['hidden_channels']}; {torch.get_num_threads()} threads, "
          f"{result['machine']['cpu']}; fast-path kernels: {kernels.name}")
    print(f"{'path':<16}{'median s':>10}{'vs fast':>10}")
    for k, v in med.items():
        print(f"{k:<16}{v:>10.3f}{v / med['fast']:>9.2f}x")
    print(f"fast vs plain: logits rel {result['forward_rel']:.1e}, worst gradient rel {result['grad_rel_max']:.1e}; "
          f"against float64 (first image): fast {result['grad_rel_fast_vs_fp64']:.1e}, plain "
          f"{result['grad_rel_plain_vs_fp64']:.1e}")
    if "authors" in med:
        result["speedup_vs_authors"] = med["authors"] / med["fast"]
        print(f"authors vs plain (same weights): logits rel {result['authors_logits_rel']:.1e}, worst gradient rel "
              f"{result['authors_grad_rel_max']:.1e}; fast path {result['speedup_vs_authors']:.2f}x the authors' step")
    return result, models, (x, target)


if __name__ == "__main__":
    sys.exit(main())
