"""Where an eval job's items come from: inline, an uploaded file of the tenant, or a path under the
file roots; and images as a path, a data URL or base64.

Every local path a message names goes through ``switchyard.sandbox`` (``SWITCHYARD_FILE_ROOTS``): the
platform's one "file paths only under configured roots" policy.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from switchyard import sandbox
from switchyard.errors import InputRefused, InvalidParamsError
from switchyard.evaluation.schemas import MAX_ITEMS, EvalParams, Item

TASK = "switchyard.eval.run"
_ITEMS = TypeAdapter(list[Item])


def local_path(ref: str) -> Path:
    """``ref`` resolved, if it lies under a file root; ``InputRefused`` otherwise."""
    return sandbox.check_path(Path(ref).expanduser())


def _invalid(message: str, loc: tuple[Any, ...] = ("dataset_file",)) -> InvalidParamsError:
    return InvalidParamsError(TASK, [{"loc": loc, "msg": message, "type": "value_error"}])


def read_dataset_file(ref: str, tenant: str) -> bytes:
    """The bytes of an uploaded file (``file-...``, the tenant's own) or of a path under the file roots."""
    try:
        if ref.startswith("file-"):
            from switchyard.finetune.files import FileNotFound, get_file, read_bytes

            try:
                get_file(ref, tenant)  # resolved within the job's tenant: another's file is "not found"
            except FileNotFound:
                raise _invalid(f"no file {ref}") from None
            return read_bytes(ref)
        return local_path(ref).read_bytes()
    except (OSError, InputRefused) as exc:
        raise _invalid(f"cannot read {ref}: {exc}") from None


def check_directory(ref: str, loc: tuple[Any, ...]) -> Path:
    """A directory the job names, resolved under the file roots; ``InvalidParamsError`` otherwise."""
    try:
        path = local_path(ref)
    except InputRefused as exc:
        raise _invalid(str(exc), loc) from None
    if not path.is_dir():
        raise _invalid(f"{ref} is not a directory", loc)
    return path


def parse_items(raw: bytes) -> list[Item]:
    """JSONL (one item per line) or a JSON array; a schema failure raises ``InvalidParamsError``."""
    text = raw.decode("utf-8", errors="strict").strip()
    try:
        data = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()
                                                              if line.strip()]
    except json.JSONDecodeError as exc:
        raise _invalid(f"not JSON or JSON Lines: {exc}") from None
    if not data:
        raise _invalid("the dataset file is empty")
    if len(data) > MAX_ITEMS:
        raise _invalid(f"more than {MAX_ITEMS} items")
    try:
        items = _ITEMS.validate_python(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidParamsError(TASK, [{**e, "loc": ("dataset_file", *e["loc"])} for e in errors]) from None
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise _invalid("item ids must be unique")
    return items


def load_items(params: EvalParams, tenant: str) -> list[Item]:
    if params.dataset is not None:
        return list(params.dataset)
    return parse_items(read_dataset_file(params.dataset_file, tenant))


def decode_image(ref: str) -> Any:
    """A PIL image (RGB) from a data URL, base64 or a path under the file roots; ``ValueError`` if not."""
    from PIL import Image, UnidentifiedImageError

    try:
        if ref.startswith("data:"):
            header, _, payload = ref.partition(",")
            if ";base64" not in header:
                raise ValueError("data URL must be base64-encoded")
            data = base64.b64decode(payload, validate=True)
        elif len(ref) > 256 or not any(c in ref for c in "/."):
            data = base64.b64decode(ref, validate=True)
        else:
            data = local_path(ref).read_bytes()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError, InputRefused) as exc:
        raise ValueError(f"image does not decode: {type(exc).__name__}: {exc}") from None
