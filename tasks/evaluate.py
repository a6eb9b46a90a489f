"""The ``eval`` queue: ``switchyard.eval.run`` (a dataset file is checked before the claim, then scored)."""

from __future__ import annotations

from switchyard.evaluation.run import eval_job, precheck
from tasks._base import job_task

run = job_task("switchyard.eval.run", precheck=precheck)(eval_job)
