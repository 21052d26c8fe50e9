"""A worker loop: leases jobs of the classes it has handlers for, runs each handler in a
thread of its own (up to ``concurrency`` at once), keeps their leases alive, and reports each
success with the handler's return value as its result, or each failure with its message and
traceback. On SIGINT or SIGTERM it stops leasing and waits for running jobs; a second signal
stops the wait."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, Optional

from .client import ApiError, Client, Lease, Unreachable

log = logging.getLogger("outsourced.worker")

# Refusals of a report that no later try can turn around: the attempt fails for good.
FOR_GOOD = {"invalid_input", "bad_payload", "unknown_queue", "not_found", "unknown"}


class GiveUp(Exception):
    """Raised by a handler whose job must not be tried again, however many attempts it has
    left (a permanent error: bad arguments, a deleted record)."""


class Retry(Exception):
    """Raised by a handler to have its job tried again after ``after`` seconds (instead of
    after its back-off): ``raise Retry(after=30)``, or with a message, ``Retry("busy", 30)``."""

    def __init__(self, message: str = "tried again on request", after: float = 0.0):
        super().__init__(message)
        self.after = after


@dataclass
class Job:
    """What a handler gets: the job's id, class, arguments, queue and attempt, the results of
    the jobs it waited for, when its ``max_run_time`` runs out (``deadline``, or ``None``),
    and ``follow_ups``, a list the handler may append jobs to (made by ``new_job``): they are
    enqueued with its success, and never if it fails."""

    id: int
    job_class: str
    args: Any
    queue: str
    attempt: int
    dependency_results: dict
    deadline: Optional[datetime] = None
    follow_ups: list = field(default_factory=list)
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        """Whether someone asked to cancel this job: stop early (raise, or return)."""
        return self._cancelled.is_set()


@dataclass
class Tally:
    """What a run did: attempts that succeeded or failed, jobs given back untried, and jobs
    whose end could not be told (their leases run out and they run again)."""

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
        self.instance = instance_id()
        self.stopping = threading.Event()
        # Set by a second signal: stop waiting for running jobs.
        self._hurry = threading.Event()
        # Set once the run is over: heartbeats end.
        self._done = threading.Event()
        # By lease token: a job retried at once may be leased again before its first
        # attempt's end is counted.
        self._running: dict[str, tuple[Lease, Job]] = {}
        self._ended: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._leased_any = False

    def stop(self) -> None:
        """Stops leasing; running jobs finish (as a first SIGINT or SIGTERM does)."""
        self.stopping.set()

    def run(self, *, exit_when_idle: bool = False) -> Tally:
        """Works until stopped, or with ``exit_when_idle`` until nothing is ready and nothing
        runs (a job due later, such as a retry, is left for a later run); then waits for the
        running jobs and gives back anything it still holds. From the main thread it takes
        SIGINT and SIGTERM: the first stops leasing, a second stops the wait and raises
        ``KeyboardInterrupt``, leaving jobs still running to their leases (no longer
        extended: they run again elsewhere once those run out)."""
        restore = self._install_signals()
        tally = Tally()
        threading.Thread(target=self._beat, daemon=True, name="outsourced-heartbeat").start()
        try:
            self._warn_of_queues()
            self._loop(tally, exit_when_idle)
        finally:
            self.stopping.set()
            self._drain(tally)
            self._done.set()
            restore()
        if self._hurry.is_set() and self._running:
            raise KeyboardInterrupt
        return tally

    def _warn_of_queues(self) -> None:
        if not self.queues:
            return
        try:
            hired = {q["name"] for q in self.client.queues()}
        except Unreachable:
            return  # The loop waits for the server, and says so.
        for name in self.queues:
            if name not in hired:
                log.warning("queue %r does not exist or this worker is not hired for it: "
                            "it works no job of it (`outsourcer queue hire %s WORKER`)", name, name)

    def _loop(self, tally: Tally, exit_when_idle: bool) -> None:
        outage = _Outage()
        while not self.stopping.is_set():
            self._collect(tally, block=len(self._running) >= self.concurrency)
            room = self.concurrency - len(self._running)
            if room == 0 or self.stopping.is_set():
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
                if isinstance(error, ApiError) and error.status < 500:
                    raise
                self.stopping.wait(outage.failed(error))
                continue
            outage.reached()
            if leases:
                self._leased_any = True
            if self.stopping.is_set():
                # Leased by a poll that was on its way when the stop came: not started.
                for lease in leases:
                    self._report(lambda lease=lease: self.client.release(self.instance, lease), lease)
                    tally.released += 1
                return
            if not leases and exit_when_idle:
                if idle:
                    return
                self._collect(tally, block=True)
            for lease in leases:
                self._start(lease)

    def _start(self, lease: Lease) -> None:
        job = _job_of(lease)
        with self._lock:
            self._running[lease.token] = (lease, job)
        thread = threading.Thread(
            target=lambda: self._ended.put((lease.token, self._end(lease, job))),
            daemon=True,
            name=f"outsourced-job-{lease.id}",
        )
        thread.start()

    def _end(self, lease: Lease, job: Job) -> str:
        """Runs the job and tells its end; whatever goes wrong, the end is counted (a thread
        that died would leave the run waiting for it forever)."""
        try:
            return self._perform(lease, job)
        except BaseException as error:  # noqa: BLE001 - counted, and said
            log.error("job %s: its end could not be told: %r", job.id, error)
            return "lost"

    def _perform(self, lease: Lease, job: Job) -> str:
        try:
            result = self.handlers[job.job_class](job)
        except GiveUp as error:
            return self._fail(lease, error, retry=False)
        except Retry as error:
            return self._fail(lease, error, retry_after=error.after)
        except BaseException as error:  # noqa: BLE001 - every failure is the job's (SystemExit too)
            return self._fail(lease, error)
        unfit = _unfit(result, job.follow_ups)
        if unfit:
            return self._fail(lease, TypeError(unfit), retry=False)
        try:
            done = lambda: self.client.complete(self.instance, lease, result, job.follow_ups)  # noqa: E731
            if not self._report(done, lease):
                return "lost"
        except ApiError as refused:
            # A refused success (a result too large, a follow-up refused) fails the attempt:
            # for good, but after its back-off for a full queue.
            log.warning("job %s: its success was refused: %s", job.id, refused)
            return self._fail(lease, refused, retry=refused.code not in FOR_GOOD)
        return "succeeded"

    def _fail(self, lease: Lease, error: BaseException, **how: Any) -> str:
        # SystemExit(3) says "3": such an exit is named.
        plain = isinstance(error, Exception) and str(error)
        message = str(error) if plain else repr(error)
        trace = "".join(traceback.format_exception(error))
        failed = lambda: self.client.fail(self.instance, lease, message, backtrace=trace, **how)  # noqa: E731
        try:
            return "failed" if self._report(failed, lease) else "lost"
        except ApiError as refused:
            log.error("job %s: its failure was refused: %s", lease.id, refused)
            return "lost"

    def _report(self, send: Callable[[], Any], lease: Lease) -> bool:
        """Sends a lease's report until it reaches the server or the lease runs out; False
        when it did not reach it in time (or the lease was gone: the server took the job
        back)."""
        pause = 0.1
        while True:
            try:
                send()
                return True
            except Unreachable as error:
                failure: Exception = error
            except ApiError as error:
                if error.code == "stale_lease":
                    log.warning("job %s: its lease was gone when its end was told", lease.id)
                    return False
                if error.status < 500:
                    raise
                failure = error
            if datetime.now(timezone.utc) + timedelta(seconds=pause) >= lease.expires_at:
                log.error("job %s: could not tell its end before its lease ran out: %s",
                          lease.id, failure)
                return False
            if pause == 0.1:
                log.warning("job %s: cannot tell its end yet (%s); trying again until its "
                            "lease runs out", lease.id, failure)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)

    def _collect(self, tally: Tally, block: bool) -> None:
        """Counts the jobs that ended (waiting for one when ``block`` and one runs)."""
        while self._running:
            try:
                token, how = self._ended.get(block=block, timeout=0.1 if block else None)
            except queue.Empty:
                if block and not self._hurry.is_set():
                    continue
                return
            with self._lock:
                self._running.pop(token, None)
            setattr(tally, how, getattr(tally, how) + 1)
            block = False

    def _drain(self, tally: Tally) -> None:
        """Waits for running jobs (until a second signal), then gives back what this
        instance still holds, unless a job still runs: a job given back while its handler
        runs could run twice at once. Such a job is left to its lease."""
        if self._running:
            log.info("waiting for %d running jobs to finish (a second signal stops the wait)",
                     len(self._running))
        while self._running and not self._hurry.is_set():
            self._collect(tally, block=True)
        if self._running:
            log.warning("stopping with %d jobs still running: they run again elsewhere once "
                        "their leases run out", len(self._running))
            return
        if not self._leased_any:
            return
        try:
            tally.released += self.client.release_all(self.instance)
        except (ApiError, Unreachable) as error:
            log.error("could not give back this worker's jobs (their leases will run out): %s", error)

    def _beat(self) -> None:
        """Extends each running job's lease once 10 s or less of it is left, until the run
        is over."""
        said = 0.0
        while not self._done.wait(1.0):
            if self._hurry.is_set():
                return
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
                    # At most every 10 s: an outage fails every lease's, every second.
                    if time.monotonic() - said >= _Outage.SAY_EVERY:
                        log.warning("job %s: heartbeat failed: %s", job.id, error)
                        said = time.monotonic()

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

        def restore() -> None:
            for number, handler in before.items():
                signal.signal(number, handler)

        return restore


class _Outage:
    """A time the server could not be reached: the pause before each next try (doubling from
    0.1 s to 10 s, so that a restarted server is found within 10 s), said at first and then at
    most every 10 s, and said over once it answers."""

    SAY_EVERY = 10.0

    def __init__(self) -> None:
        self.since: Optional[float] = None
        self.said = 0.0
        self.pause = 0.1
        self.tries = 0

    def failed(self, error: Exception) -> float:
        now = time.monotonic()
        if self.since is None:
            self.since, self.said = now, now - self.SAY_EVERY
        self.tries += 1
        if now - self.said >= self.SAY_EVERY:
            log.warning("cannot reach the server (%s); waiting for it: down for %ds, %d tries",
                        error, now - self.since, self.tries)
            self.said = now
        pause, self.pause = self.pause, min(self.pause * 2, 10.0)
        return pause

    def reached(self) -> None:
        if self.since is not None:
            log.info("reached the server again after %ds; working", time.monotonic() - self.since)
        self.since, self.pause, self.tries = None, 0.1, 0


def _unfit(result: Any, follow_ups: list) -> Optional[str]:
    """Why a success cannot be told as it is (its result or follow-ups are not JSON, a
    follow-up is not a job), or None."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"the result is not JSON: {error}"
    for n, follow_up in enumerate(follow_ups, 1):
        if not isinstance(follow_up, dict) or "class" not in follow_up:
            return f"follow-up {n} is not a job (make it with new_job): {follow_up!r:.100}"
        try:
            json.dumps(follow_up, allow_nan=False)
        except (TypeError, ValueError) as error:
            return f"follow-up {n} is not JSON: {error}"
    return None


def _job_of(lease: Lease) -> Job:
    job = lease.job
    limit = job.get("max_run_time_ms")
    deadline = None
    if limit is not None:
        deadline = datetime.now(timezone.utc) + timedelta(milliseconds=limit)
    return Job(
        id=job["id"],
        job_class=job["class"],
        args=job["args"],
        queue=job["queue"],
        attempt=lease.attempt,
        dependency_results=lease.dependency_results,
        deadline=deadline,
    )
