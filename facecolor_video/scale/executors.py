"""Segments as Ray tasks: one film, or a whole archive, over a Ray cluster.

Optional: ``pip install 'facecolor-video[ray]'``. Ray is imported only when
used. Each task colorizes one segment (``segments.run_segment``) into a
temporary folder on its node and returns the encoded bytes with the record;
the driver writes them into the work folder (atomically, file before record),
so the work folder need not be shared. The input files must be readable at the
same path on every node (a shared filesystem). Tasks ask for one GPU each where
the cluster has GPUs, else one CPU; a worker process keeps its Colorizer for
the next task with the same settings.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import FacecolorError

_COLORIZERS: dict[str, object] = {}


def require_ray():
    """The ray module, or a FacecolorError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise FacecolorError(
            "--ray needs the optional Ray package: pip install 'facecolor-video[ray]' (or pip install ray)"
        ) from None
    return ray


def connect(address: str = "local", **init_options):
    """Join the Ray cluster at address ('local', or empty: start one on this machine); returns ray."""
    ray = require_ray()
    if not ray.is_initialized():
        if address in ("local", "", None):
            ray.init(**init_options)
        else:
            ray.init(address=address, **init_options)
    return ray


def _colorize_segment_task(job, colorizer_settings: dict) -> tuple[dict, bytes]:
    # Runs on a Ray worker: one colorizer per worker process and settings, reused.
    from ..model.colorizer import Colorizer
    from .segments import run_segment

    key = json.dumps(colorizer_settings, sort_keys=True, default=str)
    if key not in _COLORIZERS:
        _COLORIZERS.clear()
        _COLORIZERS[key] = Colorizer(**colorizer_settings)
    scratch = Path(tempfile.mkdtemp(prefix="facecolor-segment-"))
    try:
        record = run_segment(job, _COLORIZERS[key], work_dir=scratch)
        return record, (scratch / record["file"]).read_bytes()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_jobs_ray(jobs: list, colorizer_settings: dict, address: str, on_done: Callable) -> None:
    """Run segment jobs as Ray tasks; on_done(job, record) on the driver as each one lands."""
    from .segments import commit_segment

    ray = connect(address)
    gpus = ray.cluster_resources().get("GPU", 0)
    task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=2)(_colorize_segment_task)
    pending = {task.remote(job, colorizer_settings): job for job in jobs}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                record, data = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:
                cause = error.as_instanceof_cause()
                if isinstance(cause, FacecolorError):
                    raise FacecolorError(str(cause).splitlines()[-1]) from None
                raise
            commit_segment(job.work_dir, record, data)
            on_done(job, record)
    except BaseException:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise
