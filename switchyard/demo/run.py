"""``make demo``: start the embedded stack, push jobs through every pool, show their events, stop.

The steps, one module each in this package, in the order the demo tells the story: ``webhook`` (a signed
webhook job streamed over SSE), ``index`` (the demo corpus, cited search), ``finetune`` (a LoRA through
the OpenAI-compatible API), ``agent`` (``rag_answer`` with the base model and the adapter), ``cache`` (the
same question again, from the LLM cache) and ``evaluation`` (base vs. adapter with confidence intervals).
A step runs when its pool's extra is installed; it gets the running ``DevStack`` and a rich ``Console``
and returns normally, or raises to fail the demo.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import time
import warnings
from collections.abc import Callable

from rich.console import Console
from rich.rule import Rule

from switchyard.demo.webhook import webhook_step
from switchyard.dev import DevStack

Step = Callable[[DevStack, Console], None]


def _pool_steps() -> list[Step]:
    """The pools' steps, in the order the demo tells the story, for the pools that are installed."""
    steps: list[Step] = []
    index = importlib.util.find_spec("sentence_transformers") is not None
    if index:
        from switchyard.demo.index import index_step

        steps.append(index_step)
    if importlib.util.find_spec("peft"):
        from switchyard.demo.finetune import finetune_step

        steps.append(finetune_step)
        if index and importlib.util.find_spec("langgraph"):  # the agent answers from the indexed corpus
            from switchyard.demo.agent import agent_step

            steps.append(agent_step)
    if importlib.util.find_spec("cachetools"):  # the cache extra: ask twice, the second from the cache
        from switchyard.demo.cache import cache_step

        steps.append(cache_step)
    if importlib.util.find_spec("peft") and importlib.util.find_spec("sacrebleu"):  # last: base vs. adapter
        from switchyard.demo.evaluation import eval_step

        steps.append(eval_step)
    return steps


STEPS: list[Step] = [webhook_step]


def run_demo() -> int:
    console = Console()
    # The platform's processes log to STATE_DIR/logs; the terminal is for the story.
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # CPU kernels notice: expected here
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="platformdirs")
    os.environ.setdefault("SWITCHYARD_WEBHOOK_SECRET", secrets.token_hex(16))
    started = time.monotonic()
    stack = DevStack(on_event=lambda text: console.print(f"[dim]dev: {text}[/dim]"))
    try:
        console.print(Rule("switchyard demo: starting the embedded stack"))
        urls = stack.start()
        for key, value in urls.items():
            console.print(f"  {key}={value}")
        took = {"start": time.monotonic() - started}  # where the time goes, printed at the end
        for step in [*STEPS, *_pool_steps()]:
            step_started = time.monotonic()
            step(stack, console)
            took[step.__name__.removesuffix("_step")] = time.monotonic() - step_started
        console.print(Rule(f"[bold green]demo finished in {time.monotonic() - started:.0f}s[/bold green]"))
        console.print("  " + ", ".join(f"{name} {seconds:.0f}s" for name, seconds in took.items()) +
                      f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        return 0
    except Exception as exc:
        console.print(f"[bold red]demo failed:[/bold red] {exc}")
        console.print(f"logs: {stack.state / 'logs'}")
        return 1
    finally:
        stack.stop()
