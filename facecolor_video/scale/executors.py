"""Where segment jobs run: in this process, in spawned worker processes, or as Ray tasks.

Each job is ``segments.run_segment``; this module only decides where it runs
and hands each record back as it lands.

Ray is optional: ``pip install 'facecolor-video[ray]'``. Ray is imported only when
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
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from ..errors import FacecolorError, InfrastructureError
from ..model.recipe import ColorizerSettings
from .segments import SegmentJob, commit_segment, run_segment


def run_jobs(
    jobs: list[SegmentJob],
    recipe: ColorizerSettings | Mapping,
    workers: int = 1,
    ray_address: str | None = None,
    colorizer=None,
    on_done: Callable[[SegmentJob, dict], None] | None = None,
    resuming: bool = False,
) -> None:
    """Run segment jobs in this process, in ``workers`` spawned processes, or on Ray; on_done after each.

    resuming: the run was started to resume (so a rerun of the same command resumes too); it only
    changes what an infrastructure error tells the user to do.
    """
    on_done = on_done or (lambda job, record: None)
    if not jobs:
        return
    recipe = ColorizerSettings.of(recipe)
    if ray_address:
        run_jobs_ray(jobs, recipe, ray_address, on_done, resuming)
    elif workers <= 1:
        if colorizer is None:
            colorizer = recipe.build()
        for job in jobs:
            on_done(job, run_segment(job, colorizer))
    else:
        _run_jobs_processes(jobs, recipe, workers, on_done, resuming)


_WORKER_COLORIZER = None


def _init_worker(recipe: ColorizerSettings, threads: int) -> None:
    import signal

    import torch

    # Ctrl-C goes to the whole process group: the parent decides, workers just stop when told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    global _WORKER_COLORIZER
    _WORKER_COLORIZER = recipe.build()


def _worker_run(job: SegmentJob) -> dict:
    return run_segment(job, _WORKER_COLORIZER)


def _run_jobs_processes(jobs, recipe: ColorizerSettings, workers, on_done, resuming=False) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    workers = min(workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // workers)
    from concurrent.futures.process import BrokenProcessPool

    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(recipe, threads))
    finished = 0
    try:
        pending = {executor.submit(_worker_run, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    record = future.result()
                except BrokenProcessPool:
                    raise InfrastructureError(
                        f"a --workers process died while colorizing {job.source} (killed, or out of memory); "
                        + kept_for_resume(finished, resuming)) from None
                on_done(job, record)
                finished += 1
    except BaseException:
        # an error, Ctrl-C or SIGTERM: stop the workers we started; finished segments stay recorded
        processes = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        raise
    executor.shutdown(wait=True)


def kept_for_resume(finished: int, resuming: bool = False) -> str:
    """The second half of an infrastructure error's line: what is kept, and how to go on."""
    rerun = "rerun the same command" if resuming else "rerun the same command with --resume"
    return (f"the films already joined and the {finished} segment(s) finished in this run are kept: "
            f"{rerun} to finish the rest")


# ---------------------------------------------------------------- Ray

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


def _colorize_segment_task(job, recipe: ColorizerSettings) -> tuple[dict, bytes]:
    # Runs on a Ray worker: one colorizer per worker process and settings, reused.
    key = json.dumps(recipe.identity(), sort_keys=True)
    if key not in _COLORIZERS:
        _COLORIZERS.clear()
        _COLORIZERS[key] = recipe.build()
    scratch = Path(tempfile.mkdtemp(prefix="facecolor-segment-"))
    try:
        record = run_segment(job, _COLORIZERS[key], work_dir=scratch)
        return record, (scratch / record["file"]).read_bytes()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_jobs_ray(jobs: list, recipe: ColorizerSettings, address: str, on_done: Callable, resuming: bool = False) -> None:
    """Run segment jobs as Ray tasks; on_done(job, record) on the driver as each one lands."""
    ray = connect(address)
    gpus = ray.cluster_resources().get("GPU", 0)
    task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=2)(_colorize_segment_task)
    pending = {task.remote(job, recipe): job for job in jobs}
    finished = 0
    try:
        while pending:
            try:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job = pending.pop(ready[0])
                record, data = ray.get(ready[0])
            except ray.exceptions.RayTaskError as error:
                cause = error.as_instanceof_cause()
                if isinstance(cause, FacecolorError):
                    raise FacecolorError(str(cause).splitlines()[-1]) from None
                raise
            except ray.exceptions.RayError as error:
                # Ray's own processes failed (its raylet or an agent died, a node was lost, a worker crashed
                # past its retries): nothing the film did, and nothing a traceback would help with
                raise InfrastructureError(f"Ray failed ({type(error).__name__}: {_first_line(error)}); "
                                          + kept_for_resume(finished, resuming)) from None
            commit_segment(job.work_dir, record, data)
            on_done(job, record)
            finished += 1
    except BaseException:
        for reference in pending:
            try:
                ray.cancel(reference, force=True)
            except Exception:  # a dead cluster cannot cancel: there is nothing left running to stop
                pass
        raise


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:200] if lines else "no detail"
