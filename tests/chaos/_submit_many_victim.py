"""The victim of tests/chaos/test_batch_chaos.py: submits a batch of pings with ``client.submit_many`` and
kills itself (SIGKILL, as ``kill -9`` would) after the batch's durable commit, once it has sent ``SENT``
of the batch's messages. ``python -m tests.chaos._submit_many_victim SENT KEY ...``"""

from __future__ import annotations

import os
import signal
import sys

from switchyard import client, dispatch


def main(sent_before_kill: int, keys: list[str]) -> None:
    send, sent = dispatch.send, []

    def send_then_die(job, **kwargs):
        if len(sent) == sent_before_kill:
            os.kill(os.getpid(), signal.SIGKILL)
        sent.append(send(job, **kwargs))

    dispatch.send = send_then_die  # enqueue_many looks it up in dispatch's namespace at each call
    client.submit_many([{"kind": "control.ping", "params": {}, "idempotency_key": key} for key in keys])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
