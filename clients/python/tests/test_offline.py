"""The worker loop and the job options without a server: a client that answers as the server
would, and fails as a network does."""

import os
import sys
import unittest
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from outsourced import ApiError, Lease, Retry, Unreachable, Worker, new_job  # noqa: E402


class FakeServer:
    """Leases the jobs it is given once each; records every report; fails the first
    ``down`` reports as an unreachable server would."""

    def __init__(self, jobs, down=0):
        self.jobs = list(jobs)
        self.down = down
        self.reports = []

    def queues(self):
        return [{"name": "default"}]

    def reserve(self, instance, limit, **_):
        taken, self.jobs = self.jobs[:limit], self.jobs[limit:]
        later = datetime.now(timezone.utc) + timedelta(seconds=30)
        return [
            Lease(job=job, token=f"t{job['id']}.{job.get('attempt', 1)}", expires_at=later,
                  attempt=job.get("attempt", 1))
            for job in taken
        ]

    def _told(self, what, lease, **details):
        if self.down > 0:
            self.down -= 1
            raise Unreachable("cannot reach the server: Connection refused")
        self.reports.append((what, lease.id, details))

    def complete(self, instance, lease, result=None, follow_ups=()):
        self._told("complete", lease, result=result, follow_ups=list(follow_ups))

    def fail(self, instance, lease, message, **how):
        self._told("fail", lease, message=message, **how)
        if how.get("retry_after") is not None:
            self.jobs.append(dict(lease.job, attempt=lease.attempt + 1))

    def heartbeat(self, instance, lease):
        return False

    def release_all(self, instance):
        return 0


def job(job_id, job_class="Work", args=None):
    return {"id": job_id, "class": job_class, "args": args or [], "queue": "default"}


class Offline(unittest.TestCase):
    def test_a_report_is_sent_again_while_the_server_is_out_of_reach(self):
        server = FakeServer([job(1)], down=2)
        tally = Worker(server, {"Work": lambda j: "done"}).run(exit_when_idle=True)
        self.assertEqual(tally.succeeded, 1)
        self.assertEqual(server.reports, [("complete", 1, {"result": "done", "follow_ups": []})])

    def test_a_job_leased_again_before_its_first_end_is_counted_is_counted_twice(self):
        server = FakeServer([job(4)])

        def flaky(j):
            if j.attempt == 1:
                raise Retry("again", after=0)
            return "second"

        tally = Worker(server, {"Work": flaky}).run(exit_when_idle=True)
        self.assertEqual((tally.failed, tally.succeeded), (1, 1))
        self.assertEqual([what for what, _, _ in server.reports], ["fail", "complete"])

    def test_a_result_that_is_not_json_fails_the_job_for_good(self):
        server = FakeServer([job(2)])
        tally = Worker(server, {"Work": lambda j: {1, 2}}).run(exit_when_idle=True)
        self.assertEqual((tally.succeeded, tally.failed), (0, 1))
        what, _, details = server.reports[0]
        self.assertEqual((what, details["retry"]), ("fail", False))
        self.assertIn("not JSON", details["message"])

    def test_a_refused_success_fails_the_attempt_for_good_unless_a_queue_was_full(self):
        for code, status, retried in [("unknown_queue", 404, False), ("queue_full", 429, True)]:
            server = FakeServer([job(3)])
            refusal = ApiError(status, code, "refused")

            def refused(*_, **__):
                server.complete = FakeServer.complete.__get__(server)
                raise refusal

            server.complete = refused
            tally = Worker(server, {"Work": lambda j: None}).run(exit_when_idle=True)
            self.assertEqual(tally.failed, 1, code)
            self.assertEqual(server.reports[0][2]["retry"], retried, code)

    def test_a_success_that_cannot_be_told_fails_for_good_and_every_end_is_counted(self):
        def exits(j):
            sys.exit(3)

        def bad_follow_up(j):
            j.follow_ups.append("Child")

        def unjson_follow_up(j):
            j.follow_ups.append(new_job("Child", {"ids": {1, 2}}))

        cases = [
            (exits, "SystemExit(3)", None),
            (bad_follow_up, "follow-up 1 is not a job", False),
            (unjson_follow_up, "follow-up 1 is not JSON", False),
            (lambda j: float("nan"), "the result is not JSON", False),
        ]
        for handler, said, retry in cases:
            server = FakeServer([job(5)])
            tally = Worker(server, {"Work": handler}).run(exit_when_idle=True)
            self.assertEqual(tally.failed, 1, said)
            what, _, details = server.reports[0]
            self.assertIn(said, details["message"])
            self.assertEqual(details.get("retry"), retry, said)

    def test_retry_takes_a_delay_alone(self):
        server = FakeServer([job(6)])

        def later(j):
            if j.attempt == 1:
                raise Retry(after=0)

        tally = Worker(server, {"Work": later}).run(exit_when_idle=True)
        self.assertEqual((tally.failed, tally.succeeded), (1, 1))
        self.assertEqual(server.reports[0][2]["retry_after"], 0)

    def test_a_stopped_worker_leases_nothing_more(self):
        server = FakeServer([job(7), job(8)])
        worker = Worker(server, {"Work": lambda j: worker.stop()}, concurrency=1)
        tally = worker.run(exit_when_idle=True)
        self.assertEqual(tally.succeeded, 1)
        self.assertEqual([j["id"] for j in server.jobs], [8], "the second job was never leased")

    def test_job_options_are_checked_before_anything_is_sent(self):
        with self.assertRaises(TypeError):
            new_job("X", run_at="tomorrow")
        with self.assertRaises(ValueError):
            new_job("X", run_at=datetime(2030, 1, 1))
        with self.assertRaises(ValueError):
            new_job("X", max_run_time=0)
        self.assertEqual(new_job("X", max_run_time=0.0001)["max_run_time_ms"], 1)
        at = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(new_job("X", [1], run_at=at)["run_at"], "2030-01-01T10:00:00Z")


if __name__ == "__main__":
    unittest.main()
