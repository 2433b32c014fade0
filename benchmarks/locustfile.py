"""Locust workload of benchmarks/bench_load.py: signed-in browsers and API clients on one portal.

Not meant to be run by hand: bench_load.py writes the plan (``LOAD_PLAN``, a JSON file: session
cookies, API tokens, the URLs of real pages and jobs) and starts ``locust --headless`` with it.

* ``Browser`` (weight 4): a signed-in person (a session cookie made by bench_load.py) who reads the
  home page, environments, machines, applications, files and change requests, with a think time
  of ``LOAD_WAIT`` seconds ("min,max") between pages.
* ``ApiClient`` (weight 1): a pipeline with a personal API token (``Authorization: Token <key>``)
  that lists jobs and polls one job, every ``LOAD_API_WAIT`` seconds.

Every request is made without following redirects: anything but a 200 (a redirect to the sign-in
page, a 429, a 5xx) is a failure. Requests are grouped by page kind (``name=``).
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import HttpUser, between, constant, task

PLAN = json.loads(open(os.environ["LOAD_PLAN"]).read())  # noqa: SIM115 - read once at import
_sessions = itertools.cycle(PLAN["sessions"])
_tokens = itertools.cycle(PLAN["tokens"])


def _wait(spec: str):
    low, _, high = spec.partition(",")
    low_f, high_f = float(low), float(high or low)
    return constant(low_f) if low_f == high_f else between(low_f, high_f)


class _Portal(HttpUser):
    abstract = True

    def get(self, url: str, kind: str, **kwargs) -> None:
        with self.client.get(url, name=kind, allow_redirects=False, catch_response=True, **kwargs) as response:
            if response.status_code == 0:  # no answer: the connection failed or timed out
                response.failure(f"no answer: {response.error!r}")
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code} {response.headers.get('Location', '')}".strip())


class Browser(_Portal):
    weight = 4
    wait_time = _wait(os.environ.get("LOAD_WAIT", "1,3"))

    def on_start(self) -> None:
        self.client.cookies.set(PLAN["cookie_name"], next(_sessions))

    def pick(self, kind: str) -> str:
        return random.choice(PLAN["urls"][kind])

    @task(3)
    def home(self) -> None:
        self.get("/", "home")

    @task(2)
    def environment(self) -> None:
        self.get(self.pick("environment"), "environment")

    @task(4)
    def machine(self) -> None:
        self.get(self.pick("machine"), "machine")

    @task(4)
    def application(self) -> None:
        self.get(self.pick("application"), "application")

    @task(3)
    def file(self) -> None:
        self.get(self.pick("file"), "file")

    @task(1)
    def change_list(self) -> None:
        self.get("/changes/", "change list")

    @task(2)
    def change_detail(self) -> None:
        self.get(self.pick("change"), "change detail")


class ApiClient(_Portal):
    weight = 1
    wait_time = _wait(os.environ.get("LOAD_API_WAIT", "1,2"))

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Token {next(_tokens)}", "Accept": "application/json"}

    @task(1)
    def job_list(self) -> None:
        self.get("/api/jobs/", "api jobs list", headers=self.headers)

    @task(3)
    def job_poll(self) -> None:
        self.get(random.choice(PLAN["urls"]["job"]), "api job poll", headers=self.headers)
