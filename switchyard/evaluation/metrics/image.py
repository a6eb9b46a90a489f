"""Image-set metrics: ``fid`` and ``inception_score``, computed by torchmetrics with an Inception network
read from a local file (``SWITCHYARD_EVAL_INCEPTION_WEIGHTS``; nothing is downloaded).

torchmetrics' default network comes from torch-fidelity, which fetches its weights on first use and
imports torchvision at import time (torchvision cannot sit beside the pinned CPU torch). So torchmetrics
gets a custom ``feature`` module instead: the TorchScript Inception-v3 that StyleGAN2-ADA, StyleGAN3,
EDM and clean-fid compute FID with (``inception-2015-12-05.pt``, the TensorFlow 2015-12-05 graph of the
original FID code, ported). ``net(uint8 NCHW, return_features=True)`` is its 2048-d pool3 feature (FID);
``net(..., no_output_bias=True)`` its class probabilities without the output bias (the Inception Score's
input). torchmetrics' ``InceptionScore`` softmaxes what it is given, so it gets their logarithm
(softmax(log p) = p): the score is the one StyleGAN2-ADA's ``compute_is`` gives on the same splits.

- ``fid``: the job's generated images (items' ``image``) against the reference images (items'
  ``reference_image`` plus every image file in the job's ``reference_images`` directory, under the file
  roots). Both sets need at least two images. Set-level: no per-item score.
- ``inception_score``: the mean over torchmetrics' 10 splits of the generated images; the splits are drawn
  from torch's generator seeded with the job's ``seed`` (reproducible).

Images are fed at their own size as uint8 RGB (the network resizes to 299×299 itself); consecutive images
of one size share a batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from switchyard.evaluation.metrics import Options, Scored
from switchyard.evaluation.schemas import Item

BATCH = 32
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
WEIGHTS_ENV = "SWITCHYARD_EVAL_INCEPTION_WEIGHTS"
HOW_TO_GET = (f"set {WEIGHTS_ENV} to a local copy of the TorchScript Inception-v3 'inception-2015-12-05.pt' "
              "(the FID network of StyleGAN2-ADA and clean-fid); this host cannot download it: fetch it "
              "where you can (https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
              "inception-2015-12-05.pt) and copy it to the worker")


def weights_missing() -> str | None:
    """Why the Inception network cannot be loaded (naming the file and how to get it), or ``None``."""
    from switchyard.evaluation.config import get_eval_settings

    path = get_eval_settings().inception_weights
    if path is None:
        return f"needs Inception weights: {HOW_TO_GET}"
    if not path.is_file():
        return f"needs Inception weights: {WEIGHTS_ENV}={path} does not exist; {HOW_TO_GET}"
    return None


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int) -> Any:
    """The TorchScript network, once per worker process and file version (``mtime_ns`` keys the cache)."""
    import torch

    with warnings.catch_warnings():
        # torch.jit is deprecated, but the reference FID network is only distributed as TorchScript.
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(path, map_location="cpu").eval()


def load_network() -> Any:
    from switchyard.evaluation.config import get_eval_settings

    path = get_eval_settings().inception_weights
    return _load(str(path), path.stat().st_mtime_ns)


def heads(net: Any) -> tuple[Any, Any]:
    """torchmetrics ``feature`` modules on ``net``: pool3 features (FID) and log class probabilities (IS)."""
    import torch

    class Pool3(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.net(images, return_features=True)

    class LogProbabilities(Pool3):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            probabilities = self.net(images, no_output_bias=True)
            # A probability that underflowed to 0 would make the KL term 0 * -inf = nan.
            return probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny).log()

    return Pool3(), LogProbabilities()


def batches(images: Iterable[Any]) -> Iterator[Any]:
    """uint8 NCHW tensors of up to ``BATCH`` consecutive images of one size (PIL RGB images in)."""
    import numpy as np
    import torch

    pending: list[Any] = []
    for image in images:
        if pending and (len(pending) == BATCH or pending[0].size != image.size):
            yield torch.from_numpy(np.stack([np.asarray(p) for p in pending])).permute(0, 3, 1, 2)
            pending = []
        pending.append(image)
    if pending:
        yield torch.from_numpy(np.stack([np.asarray(p) for p in pending])).permute(0, 3, 1, 2)


def reference_files(directory: str) -> list[Path]:
    """The image files of a ``reference_images`` directory (checked against the file roots), sorted."""
    from switchyard.evaluation.datasets import check_directory

    root = check_directory(directory, ("reference_images",))  # the job's precheck has already passed it
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class _Sets:
    """The generated and reference images of a job, decoded; items that cannot be used fail with a reason."""

    def __init__(self, items: Sequence[Item], want_references: bool):
        from switchyard.evaluation.datasets import decode_image

        self.generated: list[Any] = []
        self.references: list[Any] = []
        self.failed: dict[str, str] = {}
        for item in items:
            if not item.image:
                self.failed[item.id] = "missing image"
                continue
            try:
                generated = decode_image(item.image)
                reference = decode_image(item.reference_image) if want_references and item.reference_image else None
            except ValueError as exc:
                self.failed[item.id] = str(exc)
                continue
            self.generated.append(generated)
            if reference is not None:
                self.references.append(reference)


def fid(sets: _Sets, net: Any, options: Options) -> Scored:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    from switchyard.evaluation.datasets import decode_image

    result = Scored(failed={k: f"fid: {v}" for k, v in sets.failed.items()}, count=len(sets.generated))
    references = list(sets.references)
    if options.reference_images:
        for path in reference_files(options.reference_images):
            try:
                references.append(decode_image(str(path)))
            except ValueError as exc:
                result.unavailable = f"fid: reference image {path.name}: {exc}"
                return result
    if len(sets.generated) < 2 or len(references) < 2:
        result.unavailable = (f"fid needs at least 2 generated images (items' image) and 2 reference images "
                              f"(items' reference_image, or the reference_images directory); got "
                              f"{len(sets.generated)} and {len(references)}")
        return result
    pool3, _ = heads(net)
    metric = FrechetInceptionDistance(feature=pool3)
    with torch.no_grad():
        for batch in batches(references):
            metric.update(batch, real=True)
        for batch in batches(sets.generated):
            metric.update(batch, real=False)
        result.aggregate = float(metric.compute())
    return result


def inception_score(sets: _Sets, net: Any, options: Options) -> Scored:
    import torch
    from torchmetrics.image.inception import InceptionScore

    result = Scored(failed={k: f"inception_score: {v}" for k, v in sets.failed.items()}, count=len(sets.generated))
    if not sets.generated:
        return result
    _, log_probabilities = heads(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features": it must
        metric = InceptionScore(feature=log_probabilities)
    with torch.no_grad(), torch.random.fork_rng():
        for batch in batches(sets.generated):
            metric.update(batch)
        torch.manual_seed(options.seed)  # compute() permutes the features with torch's generator
        mean, _std = metric.compute()
    result.aggregate = float(mean)
    return result


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    reason = weights_missing()
    if reason is None:
        try:
            net = load_network()
        except (RuntimeError, ValueError) as exc:  # not TorchScript (e.g. a plain state dict)
            reason = (f"cannot load Inception weights as TorchScript ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}); {HOW_TO_GET}")
    if reason is not None:
        return {name: Scored(unavailable=f"{name} {reason}") for name in names}
    sets = _Sets(items, want_references="fid" in names)
    out: dict[str, Scored] = {}
    if "fid" in names:
        out["fid"] = fid(sets, net, options)
    if "inception_score" in names:
        out["inception_score"] = inception_score(sets, net, options)
    return out
