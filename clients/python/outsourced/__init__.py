"""outsourced: the Python client of an ``outsourcer serve`` server.

Producers enqueue and follow jobs; workers lease and run them::

    from outsourced import Client, Worker

    producer = Client("http://127.0.0.1:8080/outsourced", KEY, SECRET)
    job = producer.enqueue("Resize", {"image": 42}, queue="images")

    def resize(job):
        return {"pages": 3}          # the job's result

    Worker(Client(URL, WORKER_KEY, WORKER_SECRET), {"Resize": resize}).run()

Every request is signed with OAuth 1.0a (HMAC-SHA256) and its body covered by the signature;
an enqueue carries an ``Idempotency-Key`` and is sent again with it after a failure on the
way, so it is stored once.
"""

from .client import ApiError, Client, Lease, Unreachable, new_job
from .worker import GiveUp, Job, Retry, Tally, Worker, instance_id

__all__ = [
    "ApiError",
    "Client",
    "GiveUp",
    "Job",
    "Lease",
    "Retry",
    "Tally",
    "Unreachable",
    "Worker",
    "instance_id",
    "new_job",
]
__version__ = "0.1.0"
