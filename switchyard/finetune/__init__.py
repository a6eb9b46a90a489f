"""The fine-tune pool: LoRA / QLoRA adapters trained as jobs, registered, and served hot-swapped.

Nothing here imports torch at import time; the modules that need it import it inside functions, so
the API and the control pool can read schemas, files and the adapter registry without it.

- ``schemas``: the task's kwargs (``TrainParams``); ``presets``: ``"auto"`` hyperparameters;
- ``data``: JSONL formats, validation with line numbers, completion-only labels;
- ``train``: the loop; ``checkpoints``: resumable checkpoints; ``job``: one job start to end;
- ``adapters``: the registry; ``files``: uploads; ``models``: base models and ``build_tiny_llama``;
- ``serving``: one resident base model, many hot-swapped adapters, and ``ChatLocalAdapter``.
"""

from switchyard.finetune.schemas import Hyperparameters, Method, TrainParams

__all__ = ["Hyperparameters", "Method", "TrainParams"]
