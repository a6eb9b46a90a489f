"""The victim of tests/chaos/test_ledger_writer_chaos.py: runs ping jobs with the runner, one thread each
(as a threads pool does), until it is killed. ``python -m tests.chaos._batch_victim ID=SECONDS ...``"""

from __future__ import annotations

import sys
import threading

from switchyard import housekeeping
from switchyard.runner import Delivery, run_job

VICTIM = "batch-victim"


def main(jobs: dict[str, float]) -> None:
    threads = [threading.Thread(target=run_job, args=(Delivery(task="switchyard.control.ping", job_id=job_id,
                                                                  kwargs={"seconds": seconds}, worker=VICTIM),
                                                         housekeeping.ping))
               for job_id, seconds in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main({job_id: float(seconds) for job_id, seconds in (arg.split("=") for arg in sys.argv[1:])})
