"""The client against a live ``outsourcer serve``: run by the Rust suite
(``tests/it/python_client.rs``), which starts a server and passes its URL and a producer's
and a worker's credentials, both for the queue ``default``:

    OUTSOURCED_URL=... OUTSOURCED_PRODUCER=KEY:SECRET OUTSOURCED_WORKER=KEY:SECRET \\
        python3 -m unittest discover -s clients/python/tests
"""

import os
import sys
import threading
import unittest
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from outsourced import ApiError, Client, GiveUp, Retry, Unreachable, Worker, new_job  # noqa: E402

URL = os.environ.get("OUTSOURCED_URL")


def client(role):
    key, secret = os.environ[f"OUTSOURCED_{role}"].split(":", 1)
    return Client(URL, key, secret, timeout=10)


@unittest.skipUnless(URL, "needs a live server (OUTSOURCED_URL)")
class Live(unittest.TestCase):
    def setUp(self):
        self.producer = client("PRODUCER")
        self.worker = client("WORKER")

    def work(self, handlers, **options):
        """Runs a worker until nothing is left for it."""
        return Worker(self.worker, handlers, wait=0.5, **options).run(exit_when_idle=True)

    def test_a_job_enqueued_is_run_and_its_result_kept(self):
        job = self.producer.enqueue("Add", [2, 3])
        self.assertEqual(job["state"], "available")
        self.assertEqual(self.producer.job(job["id"])["args"], [2, 3])
        tally = self.work({"Add": lambda j: {"sum": sum(j.args)}})
        self.assertEqual(tally.succeeded, 1)
        self.assertEqual(self.producer.job(job["id"])["state"], "succeeded")
        self.assertEqual(self.producer.result(job["id"]), {"sum": 5})

    def test_failures_are_retried_or_not_as_the_handler_says(self):
        flaky = self.producer.enqueue("Flaky", {"fail_until": 2}, max_attempts=3)
        doomed = self.producer.enqueue("Doomed", [])

        def flaky_handler(job):
            if job.attempt < job.args["fail_until"]:
                raise Retry("not yet", after=0)
            return "at last"

        def doomed_handler(job):
            raise GiveUp("no such record")

        handlers = {"Flaky": flaky_handler, "Doomed": doomed_handler}
        tally = self.work(handlers)
        # Retried at once: the second attempt may be leased before the first's end is counted.
        self.assertEqual((tally.succeeded, tally.failed), (1, 2))
        self.assertEqual(self.producer.job(flaky["id"])["attempts"], 2)
        doomed = self.producer.job(doomed["id"])
        self.assertEqual((doomed["state"], doomed["last_error"]), ("failed", "no such record"))
        failed = [row for row in self.producer.history(doomed["id"]) if row.get("error")]
        self.assertIn("GiveUp", failed[-1]["error"]["backtrace"])

    def test_follow_ups_are_stored_with_the_success(self):
        parent = self.producer.enqueue("Split", {"pages": 3})

        def split(job):
            for page in range(job.args["pages"]):
                job.follow_ups.append(new_job("Page", {"page": page}))

        seen = []
        tally = self.work({"Split": split, "Page": lambda j: seen.append(j.args["page"])})
        self.assertEqual(tally.succeeded, 4)
        self.assertEqual(sorted(seen), [0, 1, 2])
        children = self.producer.jobs(parent=parent["id"])
        self.assertEqual({c["state"] for c in children}, {"succeeded"})

    def test_a_refused_follow_up_fails_the_job_for_good(self):
        spawner = self.producer.enqueue("Spawner", [], max_attempts=5)

        def spawn(job):
            job.follow_ups.append(new_job("Lost", [], queue="no-such-queue"))

        tally = self.work({"Spawner": spawn})
        self.assertEqual((tally.succeeded, tally.failed), (0, 1))
        stored = self.producer.job(spawner["id"])
        self.assertEqual(stored["state"], "failed")
        self.assertIn("no-such-queue", stored["last_error"])
        self.assertEqual(self.producer.jobs(parent=spawner["id"]), [])

    def test_a_batch_calls_back_once_its_jobs_ended(self):
        batch = self.producer.open_batch(new_job("Report", {}), description="pages")
        ids = self.producer.enqueue_batch(
            [new_job("Page", {"page": n}, batch=batch["id"]) for n in range(2)]
        )
        self.assertEqual(len(ids), 2)
        self.producer.close_batch(batch["id"])
        reports = []
        self.work({"Page": lambda j: None, "Report": lambda j: reports.append(j.args)})
        self.assertEqual(reports[0]["batch"]["succeeded"], 2)
        self.assertIsNotNone(self.producer.batch(batch["id"])["finished_at"])

    def test_an_enqueue_sent_again_with_its_key_is_stored_once(self):
        job = new_job("Once", [])
        key = {"Idempotency-Key": "once-1"}
        first = self.producer.request("POST", "/jobs", job, headers=key)
        again = self.producer.request("POST", "/jobs", job, headers=key)
        self.assertEqual(first["id"], again["id"])
        # A caller's own key: a call made again after `Unreachable` answers the stored job.
        mine = self.producer.enqueue("Once", [2], idempotency_key="mine-1")
        retried = self.producer.enqueue("Once", [2], idempotency_key="mine-1")
        self.assertEqual(mine["id"], retried["id"])
        ids = self.producer.enqueue_batch([new_job("Once", [3])], idempotency_key="mine-2")
        self.assertEqual(self.producer.enqueue_batch([new_job("Once", [3])], "mine-2"), ids)

    def test_leases_by_hand_heartbeat_release_and_a_stale_token(self):
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        scheduled = self.producer.enqueue("Later", [], run_at=later)
        self.assertEqual(self.producer.cancel(scheduled["id"]), "cancelled")
        job = self.producer.enqueue("ByHand", [])
        instance = "py-by-hand"
        (lease,) = self.worker.reserve(instance, 1, classes=["ByHand"])
        self.assertEqual(lease.id, job["id"])
        before = lease.expires_at
        self.assertFalse(self.worker.heartbeat(instance, lease))
        self.assertGreaterEqual(lease.expires_at, before)
        self.worker.release(instance, lease)
        with self.assertRaises(ApiError) as stale:
            self.worker.complete(instance, lease)
        self.assertEqual((stale.exception.status, stale.exception.code), (409, "stale_lease"))
        (again,) = self.worker.reserve(instance, 1, classes=["ByHand"])
        self.worker.complete(instance, again, result=[1])
        self.assertEqual(self.producer.result(job["id"]), [1])

    def test_a_stopped_worker_lets_its_running_job_finish(self):
        started, finish = threading.Event(), threading.Event()

        def slow(job):
            started.set()
            finish.wait(10)
            return "finished"

        job = self.producer.enqueue("Slow", [])
        worker = Worker(self.worker, {"Slow": slow}, wait=0.5)
        tallies = []
        running = threading.Thread(target=lambda: tallies.append(worker.run()))
        running.start()
        self.assertTrue(started.wait(10), "the job started")
        worker.stop()
        finish.set()
        running.join(15)
        self.assertEqual(tallies[0].succeeded, 1)
        self.assertEqual(self.producer.result(job["id"]), "finished")

    def test_refusals_are_raised_with_the_servers_code(self):
        with self.assertRaises(ApiError) as unknown:
            self.producer.enqueue("X", [], queue="no-such-queue")
        self.assertEqual((unknown.exception.status, unknown.exception.code), (404, "unknown_queue"))
        self.assertIn("not granted", unknown.exception.message)
        with self.assertRaises(ApiError) as typo:
            self.producer.enqueue("X", [], queue="defualt")
        self.assertIn("did you mean default?", typo.exception.message)
        with self.assertRaises(ApiError) as forbidden:
            self.worker.enqueue("X", [])
        self.assertEqual(forbidden.exception.code, "forbidden")
        key = os.environ["OUTSOURCED_PRODUCER"].split(":", 1)[0]
        with self.assertRaises(ApiError) as refused:
            Client(URL, key, "not-the-secret").job(1)
        self.assertEqual((refused.exception.status, refused.exception.code), (401, "invalid_signature"))
        with self.assertRaises(ApiError) as unmounted:
            Client(URL.rsplit("/", 1)[0], "k", "s").job(1)
        self.assertIn("mount", unmounted.exception.message)

    def test_a_server_that_is_not_there_is_said_so(self):
        with self.assertRaises(Unreachable):
            Client("http://127.0.0.1:9/outsourced", "k", "s", timeout=2).job(1)


if __name__ == "__main__":
    unittest.main()
