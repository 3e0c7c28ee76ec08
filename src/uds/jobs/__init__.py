"""Background jobs: the job model, progress events, arq enqueue, fairness and cancellation.

Public entry points live in their modules (kept out of this file so importing one does not
import them all): `uds.jobs.runtime` (JobContext, job_kind, JobCancelled) for job authors,
`uds.jobs.service` (start_job, get_job, cancel_job, ...) for callers, `uds.jobs.stream`
(job_event_stream) for subscribers. docs/jobs.md describes the whole design.
"""
