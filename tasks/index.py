"""The ``index`` queue: documents into pgvector (``switchyard.retrieval``). Nothing heavy at import."""

from __future__ import annotations

from switchyard.retrieval.work import delete_job, ingest_job, ingest_part_job
from tasks._base import job_task

ingest = job_task("switchyard.index.ingest")(ingest_job)
ingest_part = job_task("switchyard.index.ingest_part")(ingest_part_job)
delete = job_task("switchyard.index.delete")(delete_job)
