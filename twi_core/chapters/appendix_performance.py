"""The appendix page "Performance": its preset table, the live plain-vs-fast comparison and the GPU report.

The measurements themselves come from :mod:`twi_core.benchmarking`; the stored full measurements come from the
scripts in ``benchmarks/``.
"""

from __future__ import annotations

from typing import Any

from twi_core.benchmarking import bench_training_step

__all__ = ["GPU_VARIANTS", "TABLE", "gpu_report", "gpu_summary", "live_comparison", "page_settings"]


#: Scale of the live measurement on the appendix page "Performance" (stored full measurements come from benchmarks/).
TABLE: dict[str, dict[str, Any]] = {
    "smoke": {"live_batch": 2, "live_steps": 20, "live_size": 16, "repeats": 1},
    "book": {"live_batch": 8, "live_steps": 100, "live_size": 64, "repeats": 3},
    "paper": {"live_batch": 32, "live_steps": 100, "live_size": 64, "repeats": 5},
}


def page_settings(preset: str | None = None, **overrides: Any):
    """The page's settings at ``preset`` (``$TWI_PRESET`` wins), through :func:`twi_core.presets.resolve`."""
    from twi_core.presets import resolve

    return resolve(TABLE, preset, **overrides)


def live_comparison(settings) -> dict[str, Any]:
    """The Tetrominoes NWM-linear at the page's scale: plain vs fast step, side by side, with the equality checks."""
    from twi_core.models.registry import paper_config

    config = {**paper_config("tetrominoes", "nwm", "linear"), "steps": settings.live_steps,
              "image_size": settings.live_size}
    return bench_training_step(config, settings.live_batch, repeats=settings.repeats)


#: What each variant of ``benchmarks/bench_gpu.py`` is, for tables.
GPU_VARIANTS: dict[str, str] = {
    "plain": "specification rollout, eager (the authors' way)",
    "plain+graph": "specification rollout, step replayed as a CUDA graph",
    "fast": "engine, eager kernels",
    "fast+graph": "engine, eager kernels, CUDA graph",
    "fast+compile+graph": "engine, compiled kernels, CUDA graph (default of fit on CUDA)",
}


def gpu_summary(result: dict[str, Any]):
    """Tables from a ``benchmarks/bench_gpu.py`` JSON: step times per variant, and full-epoch times.

    Returns ``(steps, epochs)`` DataFrames: ``steps`` has one row per (batch, TF32, variant) with the median ms, the
    ratio to the plain eager step measured in the same rounds and the achieved TFLOP/s; ``epochs`` one row per
    ``fit`` measurement (seconds per epoch, validation included).
    """
    import pandas as pd

    rows = []
    for r in result.get("steps", []):
        for name, ms in r.get("median_ms", {}).items():
            rows.append({"batch": r["batch"], "TF32": r["tf32"], "variant": name,
                         "what": GPU_VARIANTS.get(name, ""), "ms/step": ms,
                         "× plain": r["ratio_vs_plain"].get(name), "TFLOP/s": r["tflops"][name]})
    epochs = []
    for key, label in (("epoch_plain_eager", "plain, eager"), ("epoch_eager", "fast, eager"),
                       ("epoch_graphed", "fast, CUDA graph")):
        e = result.get(key)
        if not e or "epoch_s" not in e:
            continue
        epochs.append({"training step": label, "first epoch s": e["epoch_s"][0],
                       "later epochs s": e["epoch_s"][1] if len(e["epoch_s"]) > 1 else None,
                       "images/epoch": e["n_train"], "batch": e["batch_size"],
                       "val FG-IoU after epoch 1": e["val_fg_iou"][0]})
    return pd.DataFrame(rows), pd.DataFrame(epochs)


def gpu_report(result: dict[str, Any]) -> dict[str, Any]:
    """What the Performance page shows of a ``bench_gpu.py`` JSON: short text lines, tables, a figure, glue values.

    Returns ``{"lines": [str], "steps": DataFrame (indexed by batch, TF32, variant), "epochs": DataFrame,
    "figure": Figure, "glue": {name: str}}``.
    """
    import matplotlib.pyplot as plt

    steps, epochs = gpu_summary(result)
    m, eq, mem = result["machine"], result["equality"], result["memory"]
    lines = [
        f"measured on: {m['cuda']}, torch {m['torch']}",
        f"fast vs plain (B=16): forward {eq['forward_rel_fast_vs_plain']:.1e}, worst gradient "
        f"{eq['grad_rel_fast_vs_plain']:.1e}",
        f"  against float64: fast {eq['grad_rel_fast_vs_fp64']:.1e}, plain {eq['grad_rel_plain_vs_fp64']:.1e}",
        f"CUDA graph vs eager: first-step gradients differ by {eq['grad_rel_graphed_vs_eager_step1']:.1e};",
        f"  weights after 5 Adam updates by {eq['params_rel_graphed_vs_eager_after_5']:.1e} "
        f"(the updates move them by {eq['params_rel_moved_after_5']:.1e})",
        f"coupling weight gradient over 6,400 states: Triton {eq['weight_grad_ms_device_N6400']:.2f} ms,",
        f"  GEMM form {eq['weight_grad_ms_gemm_N6400']:.2f} ms (equal to {eq['weight_grad_rel_vs_gemm_form']:.1e})",
        f"Multi-MNIST step, batch {mem['batch']}: peak allocated plain {mem['peak_bytes_plain'] / 2**30:.1f} GiB,",
        f"  fast {mem['peak_bytes_fast'] / 2**30:.1f} GiB ({mem['peak_share_fast']:.3f} of plain; before the readout fold)",
    ]
    fp32 = steps[~steps["TF32"]]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    for k, (batch, group) in enumerate(fp32.groupby("batch", sort=False)):
        bars = ax.barh([f"B={batch}  {v}" for v in group["variant"]], group["ms/step"], color=f"C{k}")
        ax.bar_label(bars, labels=[f"{ms:.1f} ms (x{r:.1f})" for ms, r in zip(group["ms/step"], group["× plain"])],
                     padding=3, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per training step (fp32, median)")
    ax.set_xlim(0, fp32["ms/step"].max() * 1.35)
    ax.set_title("Tetrominoes NWM-linear training step on an H100", fontsize=10)
    fig.tight_layout()
    best = fp32[(fp32["batch"] == 64) & (fp32["variant"] == "fast+compile+graph")].iloc[0]
    by_step = epochs.set_index("training step")
    glue = {"gpu_ratio64": f"{best['× plain']:.1f}", "gpu_ms64": f"{best['ms/step']:.1f}",
            "gpu_epoch_s": f"{by_step.loc['fast, CUDA graph', 'later epochs s']:.1f}",
            "gpu_epoch_plain_s": f"{by_step.loc['plain, eager', 'first epoch s']:.1f}"}
    table = steps.drop(columns="what").set_index(["batch", "TF32", "variant"])
    return {"lines": lines, "steps": table.round({"ms/step": 2, "× plain": 2, "TFLOP/s": 1}),
            "epochs": epochs.set_index("training step").round(2).astype(object).fillna("–"),
            "figure": fig, "glue": glue}
