"""Where the model stands, for a server that started without one: ready, training (with the
job's progress and step) or none yet (no job, or the job failed or was cancelled). Plain data
and the sentences the page, the API's 503 answers and health say, from one place.

`job` is the current training job of the served data as the job store reports it:
{"job_id", "state", "progress" (0..1), "step", "error"}, or None when there is none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

READY = "ready"
TRAINING = "training"
NO_MODEL = "no model"
# Job states that mean a model is on its way ("done": finished, this process not yet switched).
UNDER_WAY = ("queued", "running", "done")


@dataclass(frozen=True)
class ModelStatus:
    status: str  # READY, TRAINING or NO_MODEL
    job_id: str | None = None
    state: str | None = None  # the job's: queued, running, done, failed, cancelled
    progress: float | None = None  # 0..1 while a job exists
    step: str | None = None
    error: str | None = None

    @property
    def percent(self) -> int:
        return round(100 * (self.progress or 0.0))

    def text(self) -> str:
        """One line for the page: "The model is training: 40% — fitting candidates"."""
        if self.status == READY:
            return "The model is ready."
        if self.state == "queued":
            return f"The model is training: queued — {self.step or 'waiting for a worker'}"
        if self.state == "done":
            return "The model is trained: loading it into this server"
        if self.status == TRAINING:
            return f"The model is training: {self.percent}% — {self.step or 'starting'}"
        if self.state == "failed":
            return f"Training failed: {self.error or 'no reason recorded'}"
        if self.state == "cancelled":
            return "No model yet: the training job was cancelled; an admin can start it again."
        return "No model yet: no training job for this data; an admin can start one."

    def api_error(self) -> str:
        """The 503 answer's one line: what is happening and when to try again."""
        if self.status == TRAINING:
            done = f"{self.percent}%" + (f": {self.step}" if self.step else "")
            return f"the model is training ({done}); try again when GET /api/v1/health says ready"
        if self.state == "failed":
            return (
                f"no model: training failed ({self.error or 'no reason recorded'}); an admin "
                "can start training again"
            )
        return "no model yet: no training job is running for this data; an admin can start one"

    def as_dict(self) -> dict:
        """What health and the 503 answers carry besides their own keys."""
        return {
            "status": self.status,
            "job_id": self.job_id,
            "state": self.state,
            "progress": self.progress,
            "step": self.step,
            "error": self.error,
        }


def model_status(has_model: bool, job: Mapping | None) -> ModelStatus:
    """The status of a served base with (has_model) or without a model, given its job."""
    if has_model:
        return ModelStatus(READY)
    if not job:
        return ModelStatus(NO_MODEL)
    state = str(job.get("state") or "")
    return ModelStatus(
        TRAINING if state in UNDER_WAY else NO_MODEL,
        job_id=None if job.get("job_id") is None else str(job["job_id"]),
        state=state or None,
        progress=_fraction(job.get("progress")),
        step=str(job["step"]) if job.get("step") else None,
        error=str(job["error"]) if job.get("error") else None,
    )


def _fraction(x) -> float | None:
    """A progress as 0..1 (a job store's rounding or a missing value never shows as 140%)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return min(max(value, 0.0), 1.0) if math.isfinite(value) else None
