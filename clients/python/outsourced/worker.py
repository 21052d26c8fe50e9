"""A worker loop: leases jobs of the classes it has handlers for, runs each handler in a
thread of its own (up to ``concurrency`` at once), keeps their leases alive, and reports each
success with the handler's return value as its result, or each failure with its message and
traceback. On SIGINT or SIGTERM it stops leasing, lets running jobs finish, and gives back
what it still holds."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from .client import ApiError, Client, Lease, Unreachable

log = logging.getLogger("outsourced.worker")


class GiveUp(Exception):
    """Raised by a handler whose job must not be tried again, however many attempts it has
    left (a permanent error: bad arguments, a deleted record)."""


class Retry(Exception):
    """Raised by a handler to have its job tried again after ``after`` seconds (instead of
    after its back-off)."""

    def __init__(self, message: str, after: float):
        super().__init__(message)
        self.after = after


@dataclass
class Job:
    """What a handler gets: the job's id, class, arguments, queue and attempt, the results of
    the jobs it waited for, and ``follow_ups``, a list the handler may append jobs to (made
    by ``new_job``): they are enqueued with its success, and never if it fails."""

    id: int
    job_class: str
    args: Any
    queue: str
    attempt: int
    dependency_results: dict
    follow_ups: list = field(default_factory=list)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        """Whether someone asked to cancel this job: stop early (raise, or return)."""
        return self._cancelled.is_set()


@dataclass
class Tally:
    """What a run did."""

    succeeded: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0


Handler = Callable[[Job], Any]


def instance_id() -> str:
    """This process's instance id: its host, process id and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs ``handlers`` (a job class to a function of :class:`Job`) for the jobs a
    ``Client`` with a worker's credentials leases.

    ``queues``: some of the queues the worker is hired for (all of them by default).
    ``concurrency``: jobs at once. ``wait``: how long an idle worker long-polls."""

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        *,
        queues: Iterable[str] = (),
        concurrency: int = 4,
        wait: float = 5.0,
        shutdown_grace: float = 25.0,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not handlers:
            raise ValueError("a worker needs at least one handler")
        self.client = client
        self.handlers = dict(handlers)
        self.queues = list(queues)
        self.concurrency = concurrency
        self.wait = min(wait, 30.0)
        self.shutdown_grace = shutdown_grace
        self.instance = instance_id()
        self.stopping = threading.Event()
        # Set by a second signal: stop waiting for running jobs.
        self._hurry = threading.Event()
        # Set once the run is over: heartbeats end.
        self._done = threading.Event()
        self._running: dict[Future, tuple[Lease, Job]] = {}
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stops leasing; running jobs finish (as a first SIGINT or SIGTERM does)."""
        self.stopping.set()

    def run(self, *, exit_when_idle: bool = False) -> Tally:
        """Works until stopped (or, with ``exit_when_idle``, until a reserve finds nothing
        while nothing runs), then waits up to ``shutdown_grace`` for running jobs and gives
        back what it holds. Installs SIGINT and SIGTERM handlers that stop it (a second one
        stops the wait), when called from the main thread."""
        restore = self._install_signals()
        tally = Tally()
        beating = threading.Thread(target=self._beat, daemon=True)
        beating.start()
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="outsourced-job")
        try:
            self._loop(pool, tally, exit_when_idle)
        finally:
            self.stopping.set()
            self._drain(tally)
            self._done.set()
            pool.shutdown(wait=False)
            restore()
        return tally

    def _loop(self, pool: ThreadPoolExecutor, tally: Tally, exit_when_idle: bool) -> None:
        pause = 0.1
        while not self.stopping.is_set():
            self._collect(tally, block=len(self._running) >= self.concurrency)
            room = self.concurrency - len(self._running)
            if room == 0:
                continue
            idle = not self._running
            try:
                leases = self.client.reserve(
                    self.instance,
                    room,
                    queues=self.queues,
                    classes=list(self.handlers),
                    wait=0.0 if exit_when_idle else self.wait,
                )
            except (Unreachable, ApiError) as error:
                if isinstance(error, ApiError) and error.status in (401, 403):
                    raise
                log.warning("cannot reserve (%s); trying again in %.1fs", error, pause)
                self.stopping.wait(pause)
                pause = min(pause * 2, 30.0)
                continue
            pause = 0.1
            if not leases and exit_when_idle:
                if idle:
                    return
                self._collect(tally, block=True)
            for lease in leases:
                job = _job_of(lease)
                with self._lock:
                    self._running[pool.submit(self._perform, lease, job)] = (lease, job)

    def _perform(self, lease: Lease, job: Job) -> str:
        handler = self.handlers[job.job_class]
        try:
            result = handler(job)
        except GiveUp as error:
            return self._fail(lease, error, retry=False)
        except Retry as error:
            return self._fail(lease, error, retry_after=error.after)
        except Exception as error:  # noqa: BLE001 - every failure is the job's, reported
            return self._fail(lease, error)
        try:
            self.client.complete(self.instance, lease, result, job.follow_ups)
        except ApiError as error:
            if error.code == "stale_lease":
                log.warning("job %s: its lease was lost before its success was told", job.id)
                return "lost"
            # A refused success (its result too large, a follow-up refused) fails the attempt.
            return self._fail(lease, error)
        return "succeeded"

    def _fail(self, lease: Lease, error: Exception, **how: Any) -> str:
        message = str(error) or type(error).__name__
        trace = "".join(traceback.format_exception(error))
        try:
            self.client.fail(self.instance, lease, message, backtrace=trace, **how)
        except ApiError as refused:
            if refused.code == "stale_lease":
                return "lost"
            raise
        return "failed"

    def _collect(self, tally: Tally, block: bool) -> None:
        with self._lock:
            futures = list(self._running)
        if not futures:
            return
        done, _ = wait(futures, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            with self._lock:
                lease, job = self._running.pop(future)
            try:
                how = future.result()
            except Exception as error:  # noqa: BLE001 - the report itself failed
                log.error("job %s: could not report its end: %s", job.id, error)
                how = "lost"
            setattr(tally, how, getattr(tally, how) + 1)

    def _drain(self, tally: Tally) -> None:
        """Waits for running jobs (up to the grace, or a second signal), then gives back
        everything this instance holds, unless a job still runs: Python cannot stop a
        thread, and a job given back while its handler runs could run twice at once. Such a
        job is left to its lease, which is no longer extended: the server hands it out
        again once it runs out."""
        if self._running:
            log.info("waiting for %d running jobs to finish", len(self._running))
        deadline = time.monotonic() + self.shutdown_grace
        while self._running and not self._hurry.is_set() and time.monotonic() < deadline:
            self._collect(tally, block=False)
            self._hurry.wait(0.05)
        self._collect(tally, block=False)
        if self._running:
            tally.lost += len(self._running)
            log.warning(
                "stopping with %d jobs still running; their leases run out, then they run again",
                len(self._running),
            )
            return
        try:
            tally.released += self.client.release_all(self.instance)
        except (ApiError, Unreachable) as error:
            log.error("could not give back this worker's jobs (their leases will run out): %s", error)

    def _beat(self) -> None:
        """Extends each running job's lease once 10 s or less of it is left, until the run
        is over (not past the grace of a stop: see ``_drain``)."""
        while not self._done.wait(1.0):
            with self._lock:
                running = list(self._running.values())
            now = datetime.now(timezone.utc)
            for lease, job in running:
                if (lease.expires_at - now).total_seconds() > 10.0:
                    continue
                try:
                    if self.client.heartbeat(self.instance, lease):
                        job._cancelled.set()
                except (ApiError, Unreachable) as error:
                    log.warning("job %s: heartbeat failed: %s", job.id, error)

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        count = {"n": 0}

        def on_signal(number: int, _frame: Any) -> None:
            count["n"] += 1
            if count["n"] == 1:
                log.info("stopping: running jobs may finish (a second signal stops waiting)")
                self.stop()
            else:
                self._hurry.set()

        before = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in before.items()] and None


def _job_of(lease: Lease) -> Job:
    job = lease.job
    return Job(
        id=job["id"],
        job_class=job["class"],
        args=job["args"],
        queue=job["queue"],
        attempt=lease.attempt,
        dependency_results=lease.dependency_results,
    )
