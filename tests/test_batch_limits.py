"""--rpm / --tpm: the token buckets (on a fake clock) and a batch kept under a request rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from flowrun.provider.ratelimit import RateLimiter, TokenBucket
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import write
from tests.test_batch import ASK, jsonl


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def test_bucket_holds_one_second_and_refills_at_the_minute_rate():
    clock = FakeClock()
    bucket = TokenBucket(600, clock)  # 10 per second
    assert bucket.capacity == 10
    for _ in range(10):
        assert bucket.delay(1) == 0
        bucket.take(1)
    assert bucket.delay(1) == pytest.approx(0.1)
    clock.now += 0.35
    assert bucket.delay(3) == 0 and bucket.delay(4) == pytest.approx(0.05)
    clock.now += 100
    assert bucket.level <= 10 and bucket.delay(10) == 0  # never more than one second's worth


def test_low_rates_still_allow_one_request():
    bucket = TokenBucket(6, FakeClock())  # one every 10 s
    assert bucket.capacity == 1 and bucket.delay(1) == 0


def test_limiter_spaces_requests_and_lets_a_large_request_overdraw():
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, tpm=6000, clock=clock, sleep=clock.sleep)  # 2 req/s, 100 tok/s

    async def run() -> None:
        for _ in range(4):
            await limiter.acquire(10)
        await limiter.acquire(250)  # more than the bucket holds: waits for a full bucket
        await limiter.acquire(10)

    asyncio.run(run())
    # requests: 2 at once, then one every 0.5 s (the token bucket refills meanwhile); the
    # big one takes the full bucket and overdraws it to -150, so the next waits 1.6 s
    assert clock.sleeps == [0.5, 0.5, 0.5, 1.6]
    assert limiter.waited_s == pytest.approx(3.1)


def test_limiter_charges_tokens_used_beyond_the_estimate():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s
    limiter.charge(150)
    asyncio.run(limiter.acquire(10))
    assert clock.sleeps == [pytest.approx(0.6)]


class LimiterClock(FakeClock):
    """A fake clock for a batch's rate limiter, with the limiter time of every grant."""

    def __init__(self) -> None:
        super().__init__()
        self.grants: list[float] = []


@pytest.fixture
def limiter_clock(monkeypatch) -> LimiterClock:
    """The batch's rate limiter runs on a fake clock: its waits advance the clock, not the test.

    Limiter time is what the limits are about, and no load on the machine can shift it: a
    grant stamped ``t`` came after the limiter had waited ``t`` seconds in all.
    """
    from flowrun.provider import ratelimit

    clock = LimiterClock()
    real = ratelimit.RateLimiter

    class OnFakeClock(real):
        async def acquire(self, tokens: int = 0) -> None:
            await super().acquire(tokens)
            clock.grants.append(clock())

    def make(rpm=None, tpm=None, **_: object) -> RateLimiter:
        return OnFakeClock(rpm, tpm, clock=clock, sleep=clock.sleep)

    monkeypatch.setattr(ratelimit, "RateLimiter", make)
    return clock


def test_rpm_keeps_a_batch_under_the_request_rate(server, tmp_path, limiter_clock):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(25)])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--rpm", "600")
    assert res.code == 0, res.stderr
    assert len(server.requests_to("/chat/completions")) == len(limiter_clock.grants) == 25
    # 10 at once, then 10 per second: by limiter time t at most 10 + 10*t requests were let go
    assert limiter_clock.grants[:10] == [0.0] * 10
    for sent, stamp in enumerate(limiter_clock.grants, start=1):
        assert sent <= 10 + 10 * stamp + 1e-6, (sent, stamp)
    assert limiter_clock.grants[-1] == pytest.approx(1.5)


def test_tpm_counts_prompt_and_max_completion_tokens(server, tmp_path, limiter_clock):
    wf = write(tmp_path, ASK)  # max_completion_tokens: 50, so each request counts > 50 tokens
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(4)])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--tpm", "6000")
    assert res.code == 0, res.stderr
    assert len(server.requests_to("/chat/completions")) == len(limiter_clock.grants) == 4
    # 100 tokens per second: one ~60-token request at once, then one per ~0.6 s
    grants = limiter_clock.grants
    assert grants[0] == 0.0 and grants[-1] >= 1.2
    assert all(b - a >= 0.5 for a, b in zip(grants[1:], grants[2:], strict=False))


def test_flowrun_resume_batch_id_overrides_concurrency_and_rate_limits(server, tmp_path):
    import json

    from tests.run_helpers import InFlight, query

    wf = write(tmp_path, ASK)
    flight = InFlight()
    failed = 0

    def respond(req):
        nonlocal failed
        if "q1" in req.last_user_text and failed < 7:
            failed += 1  # records 1 and 10-15 fail in the first run
            return Reply(status=500, error="down")
        return Reply(content="ok")

    server.default = flight.around(respond, seconds=0.05)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(16)])
    out = tmp_path / "out.jsonl"
    first = flowrun("run", wf, "--batch", data, "--output", out, "--concurrency", "1", "--json")
    assert first.code == 1 and flight.most == 1
    batch_id = json.loads(first.stdout)["batch_id"]

    flight.most = 0
    res = flowrun("resume", batch_id, "--concurrency", "4", "--rpm", "6000", "--tpm", "900000")
    assert res.code == 0, res.stderr
    assert "7 succeeded, 0 failed, 9 already done" in res.stderr
    assert flight.most == 4
    options = json.loads(query("SELECT options FROM batches WHERE id=?", (batch_id,))[0][0])
    assert (options["concurrency"], options["rpm"], options["tpm"]) == (4, 6000, 900000)

    res = flowrun("resume", "20261125-061502-a1b2c3", "--concurrency", "4")
    assert res.code == 2 and "--concurrency goes with a batch id (batch-...)" in res.stderr


RETRYING = ASK.replace("max_retries: 0", "max_retries: 2")


def test_retries_after_a_500_also_wait_for_the_rate_limit(server, tmp_path, limiter_clock):
    """--rpm 60 allows one request per second; the SDK would retry after about 0.5 s."""
    arrivals: list[float] = []
    answers = iter([Reply(status=500, error="busy"), Reply(status=503, error="busy")])

    def flaky(req):
        arrivals.append(limiter_clock())  # one record: the limiter is idle while it is served
        return next(answers, Reply(content="ok"))

    server.default = flaky
    wf = write(tmp_path, RETRYING)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "q0"}])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--rpm", "60")
    assert res.code == 0, res.stderr
    # each retry waited for its own token: sent one limiter second after the attempt before
    assert arrivals == [0.0, pytest.approx(1.0), pytest.approx(2.0)]
    assert limiter_clock.sleeps == [pytest.approx(1.0), pytest.approx(1.0)]
    out = (tmp_path / "o.jsonl").read_text()
    assert '"status": "succeeded"' in out


def test_rate_limited_retries_honour_retry_after_and_give_up_like_the_sdk(server, tmp_path):
    arrivals: list[float] = []

    def limited(req):
        arrivals.append(time.monotonic())
        if len(arrivals) == 1:
            return Reply(status=429, error="slow down", retry_after=0.7)
        return Reply(status=400, error="bad request")  # not retried

    server.default = limited
    wf = write(tmp_path, RETRYING)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "q0"}])
    out = tmp_path / "o.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--rpm", "6000")
    assert res.code == 1
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.65
    assert "API error 400: bad request" in out.read_text()
