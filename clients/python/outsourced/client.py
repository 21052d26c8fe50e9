"""The HTTP client: every request signed with two-legged OAuth 1.0a (HMAC-SHA256), its JSON
body covered by the signature through the ``body_sha256`` query parameter, and every answer
that is not a success raised as an :class:`ApiError` with the server's code."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1

# How long an enqueue (or a request the server turned away before reading it) is sent again:
# the pauses double from 0.1 s to 2 s, with jitter, as the Rust client's do.
RETRY_FOR = 10.0
FIRST_PAUSE = 0.1
MOST_PAUSE = 2.0


class ApiError(Exception):
    """An answer that is not a success: its HTTP status, the server's ``code`` (such as
    ``queue_full``, ``stale_lease``, ``unknown_queue``), its message and the whole body."""

    def __init__(self, status: int, code: str, message: str, body: Optional[dict] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}


class Unreachable(Exception):
    """The server could not be reached (or did not answer in time), after the retries a
    request may have: an enqueue sent again carries its first ``Idempotency-Key``, so the
    job is stored at most once whatever happened to the earlier tries."""


@dataclass
class Lease:
    """A job leased to this worker instance: the job as the server stored it, the lease's
    token (present it to heartbeat, complete, fail or release), when it runs out, and the
    results of the jobs it waited for (by id)."""

    job: dict
    token: str
    expires_at: datetime
    attempt: int
    dependency_results: dict = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.job["id"]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _rfc3339(when: datetime) -> str:
    if not isinstance(when, datetime):
        raise TypeError(f"run_at must be a datetime, not {type(when).__name__}")
    if when.tzinfo is None:
        raise ValueError("run_at must be an aware datetime (say its time zone)")
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _ms(name: str, seconds: Optional[float]) -> Optional[int]:
    if seconds is None:
        return None
    if seconds <= 0:
        raise ValueError(f"{name} must be more than 0 seconds")
    return max(1, math.ceil(seconds * 1000))


def new_job(
    job_class: str,
    args: Any = None,
    *,
    queue: Optional[str] = None,
    priority: Optional[int] = None,
    run_at: Optional[datetime] = None,
    max_attempts: Optional[int] = None,
    max_run_time: Optional[float] = None,
    unique: Optional[Mapping[str, Any]] = None,
    concurrency_key: Optional[str] = None,
    depends_on: Iterable[int] = (),
    batch: Optional[int] = None,
    owner: Optional[str] = None,
) -> dict:
    """A job as ``POST /v1/jobs`` takes it (also a follow-up, a batch's callback, or one of
    :meth:`Client.enqueue_batch`'s). ``max_run_time`` is in seconds; ``unique`` is
    ``{"key": ..., "across": "class"|"queue", "period_ms": ..., "on_duplicate": ...}``."""
    job: dict = {"class": job_class, "args": [] if args is None else args}
    optional = {
        "queue": queue,
        "priority": priority,
        "run_at": _rfc3339(run_at) if run_at is not None else None,
        "max_attempts": max_attempts,
        "max_run_time_ms": _ms("max_run_time", max_run_time),
        "unique": dict(unique) if unique is not None else None,
        "concurrency_key": concurrency_key,
        "batch": batch,
        "owner": owner,
    }
    job.update({k: v for k, v in optional.items() if v is not None})
    depends_on = list(depends_on)
    if depends_on:
        job["depends_on"] = depends_on
    return job


class Client:
    """A producer's, worker's or admin's connection to ``outsourcer serve``.

    ``url`` is where the server is mounted (``http://127.0.0.1:8080/outsourced``, as
    ``outsourcer serve`` prints it); the key and secret are what ``outsourcer producer
    create`` (or ``worker``, ``admin``) printed. What a call may do depends on that role (the
    server's table in docs/http-api.md): a producer enqueues and reads its own jobs, a worker
    reserves and reports."""

    def __init__(
        self,
        url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: float = 60.0,
        session: Optional[requests.Session] = None,
    ):
        self.url = url.rstrip("/")
        self._auth = OAuth1(
            consumer_key,
            client_secret=consumer_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
        )
        self._timeout = timeout
        self._session = session or requests.Session()

    # -- the wire ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Optional[Mapping[str, Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        resend: bool = False,
        timeout: Optional[float] = None,
    ) -> Any:
        """Sends one signed request to ``/v1`` + ``path`` and answers its JSON. A request
        the server turned away before reading it (503 ``overloaded``) is sent again for up
        to 10 s; with ``resend``, so is one that failed on the way (a dropped connection, a
        timeout, any 503): only for requests that are safe to send twice."""
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if data is not None:
            digest = hashlib.sha256(data).digest()
            query["body_sha256"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        send_headers = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            send_headers["Content-Type"] = "application/json"
        started = time.monotonic()
        deadline = started + RETRY_FOR
        pause = FIRST_PAUSE
        while True:
            try:
                # Signed afresh at every try (a new nonce and timestamp).
                answer = self._session.request(
                    method,
                    f"{self.url}/v1{path}",
                    params=query,
                    data=data,
                    headers=send_headers,
                    auth=self._auth,
                    timeout=timeout or self._timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                if resend and time.monotonic() < deadline:
                    pause = self._pause(pause)
                    continue
                tried = f" (tried for {time.monotonic() - started:.0f} s)" if resend else ""
                raise Unreachable(f"cannot reach {self.url}: {_why(error)}{tried}") from error
            if answer.status_code == 503 and time.monotonic() < deadline:
                overloaded = _error_body(answer).get("code") == "overloaded"
                if overloaded or resend:
                    pause = self._pause(pause, answer.headers.get("Retry-After"))
                    continue
            if answer.status_code >= 400:
                raise _api_error(answer)
            return answer.json() if answer.content else None

    @staticmethod
    def _pause(pause: float, retry_after: Optional[str] = None) -> float:
        wait = pause * random.uniform(0.5, 1.0)
        if retry_after and retry_after.isdigit():
            wait = min(max(wait, float(retry_after)), MOST_PAUSE)
        time.sleep(wait)
        return min(pause * 2, MOST_PAUSE)

    # -- producers -----------------------------------------------------------------------

    def enqueue(
        self,
        job_class: str,
        args: Any = None,
        *,
        idempotency_key: Optional[str] = None,
        **options: Any,
    ) -> dict:
        """Stores one job (see :func:`new_job` for the options) and answers it as stored; a
        duplicate of a unique job answers the job that holds the key. Sent with an
        ``Idempotency-Key`` (``idempotency_key``, or a fresh one), and sent again with it after
        a failure on the way: stored once. To try again after :class:`Unreachable` without
        storing the job twice, give your own key and call again with the same one: a job an
        earlier call stored is answered (the server keeps a key a day)."""
        job = new_job(job_class, args, **options)
        return self.enqueue_job(job, idempotency_key=idempotency_key)

    def enqueue_job(self, job: Mapping[str, Any], idempotency_key: Optional[str] = None) -> dict:
        """Stores a job made by :func:`new_job` (``idempotency_key`` as for :meth:`enqueue`)."""
        key = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self.request("POST", "/jobs", dict(job), headers=key, resend=True)

    def enqueue_batch(
        self, jobs: Iterable[Mapping[str, Any]], idempotency_key: Optional[str] = None
    ) -> list[int]:
        """Stores several jobs (made by :func:`new_job`) in one transaction, all or none, and
        answers their ids in order (a duplicate's is its holder's); ``idempotency_key`` as for
        :meth:`enqueue`."""
        key = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        body = [dict(job) for job in jobs]
        return self.request("POST", "/jobs/batch", body, headers=key, resend=True)["ids"]

    def job(self, job_id: int) -> dict:
        """A job as stored now (its ``state``, ``attempts``, ``last_error``...)."""
        return self.request("GET", f"/jobs/{int(job_id)}")

    def history(self, job_id: int) -> list[dict]:
        """Every change of a job's state, oldest first; a success's row has its ``result``."""
        return self.request("GET", f"/jobs/{int(job_id)}/history")

    def result(self, job_id: int) -> Any:
        """What the job's last success returned (``None`` if it returned nothing or has not
        succeeded)."""
        for row in reversed(self.history(job_id)):
            if row.get("to") == "succeeded":
                return row.get("result")
        return None

    def jobs(self, **query: Any) -> list[dict]:
        """Jobs by ``GET /v1/jobs``'s query (``state``, ``queue``, ``class``, ``parent``,
        ``batch``, ``limit``...): a producer sees its own."""
        return self.request("GET", "/jobs", params=query)

    def cancel(self, job_id: int) -> str:
        """Cancels a job that has not ended (a running one is asked to stop); answers its
        state after."""
        return self.request("POST", f"/jobs/{int(job_id)}/cancel")["state"]

    def queues(self) -> list[dict]:
        """The queues the caller may use, with their counts and limits."""
        return self.request("GET", "/queues")

    def open_batch(self, callback: Mapping[str, Any], description: Optional[str] = None) -> dict:
        """Opens a batch whose ``callback`` (a job made by :func:`new_job`) runs once every
        job added to it (``new_job(..., batch=id)``) has ended and it is closed."""
        body: dict = {"callback": dict(callback)}
        if description is not None:
            body["description"] = description
        return self.request("POST", "/batches", body)

    def batch(self, batch_id: int) -> dict:
        """A batch: its counts, whether it is closed, when it finished."""
        return self.request("GET", f"/batches/{int(batch_id)}")

    def close_batch(self, batch_id: int) -> dict:
        """Closes a batch: its callback runs once every job of it has ended."""
        return self.request("POST", f"/batches/{int(batch_id)}/close")

    # -- workers -------------------------------------------------------------------------

    def reserve(
        self,
        instance: str,
        limit: int = 1,
        *,
        queues: Iterable[str] = (),
        classes: Optional[Iterable[str]] = None,
        wait: float = 0.0,
    ) -> list[Lease]:
        """Leases up to ``limit`` jobs from the queues this worker is hired for (``queues``:
        some of them), of ``classes`` only when given; waits up to ``wait`` seconds (at most
        30) for one when none is ready."""
        body: dict = {"instance": instance, "limit": int(limit), "queues": list(queues)}
        if classes is not None:
            body["classes"] = list(classes)
        if wait > 0:
            body["wait_ms"] = int(wait * 1000)
        answer = self.request("POST", "/reserve", body, timeout=self._timeout + wait)
        return [
            Lease(
                job=leased["job"],
                token=leased["lease"]["token"],
                expires_at=_time(leased["lease"]["expires_at"]),
                attempt=leased["lease"]["attempt"],
                dependency_results={
                    int(k): v for k, v in leased.get("dependency_results", {}).items()
                },
            )
            for leased in answer["jobs"]
        ]

    def heartbeat(self, instance: str, lease: Lease) -> bool:
        """Extends a lease; answers whether a cancel of the job was asked for (stop then).
        A lease that ran out or was taken back raises ``ApiError`` ``stale_lease``."""
        body = {"instance": instance, "token": lease.token}
        answer = self.request("POST", f"/jobs/{lease.id}/heartbeat", body)
        lease.expires_at = _time(answer["expires_at"])
        return bool(answer["cancel_requested"])

    def complete(
        self,
        instance: str,
        lease: Lease,
        result: Any = None,
        follow_ups: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        """Reports a success, with the job's result (any JSON value of at most 64 KiB) and
        the jobs to enqueue with it (stored only with the success)."""
        body: dict = {"instance": instance, "token": lease.token}
        if result is not None:
            body["result"] = result
        follow_ups = [dict(job) for job in follow_ups]
        if follow_ups:
            body["follow_ups"] = follow_ups
        self.request("POST", f"/jobs/{lease.id}/complete", body)

    def fail(
        self,
        instance: str,
        lease: Lease,
        message: str,
        *,
        backtrace: Optional[str] = None,
        retry: bool = True,
        retry_after: Optional[float] = None,
    ) -> str:
        """Reports a failed attempt: retried after the job's back-off (or ``retry_after``
        seconds) while attempts are left, never with ``retry=False``. Answers the state."""
        error: dict = {"message": message}
        if backtrace:
            error["backtrace"] = backtrace
        if not retry:
            how: dict = {"kind": "never"}
        elif retry_after is not None:
            how = {"kind": "after", "after_ms": int(retry_after * 1000)}
        else:
            how = {"kind": "backoff"}
        body = {"instance": instance, "token": lease.token, "error": error, "retry": how}
        return self.request("POST", f"/jobs/{lease.id}/fail", body)["state"]

    def release(self, instance: str, lease: Lease) -> None:
        """Gives a job back untried: it is available again at once, its attempt not counted."""
        body = {"instance": instance, "token": lease.token}
        self.request("POST", f"/jobs/{lease.id}/release", body)

    def release_all(self, instance: str) -> int:
        """Gives back every job this instance holds (at its exit); answers how many."""
        return self.request("POST", "/release-all", {"instance": instance})["count"]


def _why(error: Exception) -> str:
    """Why a request did not get through, in a few words (requests' own message spells out
    the whole signed URL)."""
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
    return found.group(1).strip() if found else type(error).__name__


def _error_body(answer: requests.Response) -> dict:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _api_error(answer: requests.Response) -> ApiError:
    body = _error_body(answer)
    code = body.get("code") or "http_error"
    message = body.get("message") or answer.text[:200] or answer.reason
    if not body and answer.status_code == 404:
        # Not the API's own 404 (always JSON): the URL misses the server's mount.
        message = (f"{message}: is the URL the server's mount, as `outsourcer serve` prints "
                   "it (such as http://127.0.0.1:8080/outsourced)?")
    return ApiError(answer.status_code, code, message, body)

