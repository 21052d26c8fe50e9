"""A worker written with an ordinary OAuth 1.0a library (oauthlib, through requests-oauthlib),
which knows nothing of outsourced's extras: it reserves jobs and completes them.

    python3 worker.py URL CONSUMER_KEY CONSUMER_SECRET SIGNATURE_METHOD
"""

import sys

import requests
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_HMAC_SHA256
from requests_oauthlib import OAuth1


def main():
    url, key, secret, method = sys.argv[1:5]
    method = {"HMAC-SHA1": SIGNATURE_HMAC_SHA1, "HMAC-SHA256": SIGNATURE_HMAC_SHA256}[method]
    auth = OAuth1(key, client_secret=secret, signature_method=method)
    reserved = requests.post(f"{url}/v1/reserve", json={"instance": "py-1", "limit": 10}, auth=auth)
    reserved.raise_for_status()
    jobs = reserved.json()["jobs"]
    for job in jobs:
        lease = {"instance": "py-1", "token": job["lease"]["token"]}
        done = requests.post(f"{url}/v1/jobs/{job['job']['id']}/complete", json=lease, auth=auth)
        done.raise_for_status()
    print(len(jobs))


if __name__ == "__main__":
    main()
