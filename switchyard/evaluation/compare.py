"""``compare JOB_A JOB_B``: per metric, B − A on the items both jobs scored, with a paired bootstrap
confidence interval and p-value, and a PNG chart.

Resampling is paired (the same item indices for both jobs, Koehn 2004). Metrics whose aggregate is a
mean are resampled as means; corpus BLEU and chrF are recomputed from resampled sufficient statistics
(what sacrebleu's own paired test does), so their interval is on the corpus score, not a proxy. The
p-value is two-sided, from the bootstrap distribution shifted to the null of no difference
(Berg-Kirkpatrick et al. 2012). numpy's seeded generator makes a comparison reproducible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from switchyard import jobs
from switchyard.evaluation import store

CORPUS_METRICS = ("bleu", "chrf")


class EvalJobNotFound(LookupError):
    """No eval job of that id for this tenant (another tenant's job is not found either)."""


@dataclass
class MetricComparison:
    name: str
    a: float
    b: float
    delta: float
    low: float
    high: float
    p_value: float
    paired_items: int


@dataclass
class Comparison:
    job_a: str
    job_b: str
    confidence: float
    resamples: int
    metrics: dict[str, MetricComparison] = field(default_factory=dict)
    chart: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = {k: asdict(v) for k, v in self.metrics.items()}
        return out


def eval_job(job_id: str, tenant: str) -> jobs.Job:
    job = jobs.find(job_id)
    if job is None or job.tenant != tenant or job.kind != "switchyard.eval.run":
        raise EvalJobNotFound(f"no eval job {job_id}")
    return job


def _statistic(name: str, values: np.ndarray, stats: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """The metric on each resample (rows of ``idx``)."""
    if stats is None:
        return values[idx].mean(axis=-1)
    from switchyard.evaluation.metrics.text import corpus_from_stats

    summed = stats[idx].sum(axis=-2)
    return np.array([corpus_from_stats(name, [row]) for row in summed.reshape(-1, stats.shape[1])]).reshape(
        summed.shape[:-1])


def compare_metric(name: str, rows_a: dict[str, dict], rows_b: dict[str, dict], *, resamples: int,
                   rng: np.random.Generator, confidence: float) -> MetricComparison | None:
    ids = [i for i, r in rows_a.items() if name in r["scores"] and name in rows_b.get(i, {}).get("scores", {})]
    if not ids:
        return None
    corpus = name in CORPUS_METRICS and all(name in rows_a[i]["stats"] and name in rows_b[i]["stats"] for i in ids)
    va = np.array([rows_a[i]["scores"][name] for i in ids], dtype=float)
    vb = np.array([rows_b[i]["scores"][name] for i in ids], dtype=float)
    sa = np.array([rows_a[i]["stats"][name] for i in ids], dtype=float) if corpus else None
    sb = np.array([rows_b[i]["stats"][name] for i in ids], dtype=float) if corpus else None
    everything = np.arange(len(ids))[None, :]
    a = float(_statistic(name, va, sa, everything)[0])
    b = float(_statistic(name, vb, sb, everything)[0])
    idx = rng.integers(0, len(ids), size=(resamples, len(ids)))
    deltas = _statistic(name, vb, sb, idx) - _statistic(name, va, sa, idx)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    observed = b - a
    extreme = np.abs(deltas - deltas.mean()) >= abs(observed) - 1e-12
    p_value = (int(extreme.sum()) + 1) / (resamples + 1)
    return MetricComparison(name, a, b, observed, float(low), float(high), float(min(p_value, 1.0)), len(ids))


def compare_jobs(job_a: str, job_b: str, *, tenant: str, resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95, chart: str | Path | None = None) -> Comparison:
    """Compare two eval jobs of ``tenant`` metric by metric (metrics both jobs have)."""
    first, second = eval_job(job_a, tenant), eval_job(job_b, tenant)
    names = [m for m in (first.result or {}).get("aggregate", {}) if m in (second.result or {}).get("aggregate", {})]
    rows_a = {r["item_id"]: r for r in store.load_items(first.id)}
    rows_b = {r["item_id"]: r for r in store.load_items(second.id)}
    rng = np.random.default_rng(seed)
    out = Comparison(first.id, second.id, confidence, resamples)
    for name in names:
        found = compare_metric(name, rows_a, rows_b, resamples=resamples, rng=rng, confidence=confidence)
        if found is not None:
            out.metrics[name] = found
    if chart is not None and out.metrics:
        out.chart = str(plot(out, Path(chart)))
    return out


def plot(comparison: Comparison, path: Path) -> Path:
    """B − A per metric with its interval (one row per metric; each on its own scale)."""
    import matplotlib

    matplotlib.use("Agg")  # file output only: workers and CLIs have no display
    import matplotlib.pyplot as plt

    names = list(comparison.metrics)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.2 + 0.9 * len(names)), dpi=110, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        m = comparison.metrics[name]
        color = "tab:green" if m.low > 0 else "tab:red" if m.high < 0 else "tab:gray"
        ax.errorbar([m.delta], [0], xerr=[[m.delta - m.low], [m.high - m.delta]], fmt="o", color=color, capsize=6)
        ax.axvline(0, color="black", lw=0.8)
        span = max(abs(m.low), abs(m.high), 1e-9) * 1.3
        ax.set_xlim(-span, span)
        ax.set_yticks([0], [name])
        ax.set_title(f"{name}: {m.a:.4g} → {m.b:.4g}  (p = {m.p_value:.3g}, n = {m.paired_items})", fontsize=9)
    fig.suptitle(f"B − A, {comparison.confidence:.0%} paired bootstrap interval", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
