"""API keys by scope, rate limiting per client key, load shedding, and secrets kept out of
logs: over HTTP against a real service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from tuijian.config import ConfigError, Settings
from tuijian.serving.api import create_app
from tuijian.serving.protection import TokenBuckets
from tuijian.serving.service import Service

from ..conftest import NOW

KEYS = {"admin_key": "adm-9f2c41", "ingest_key": "ing-77d0e1", "read_key": "rd-3b6a08",
        "secret": "s3cr3t-tracking-key"}


@pytest.fixture
def prod(data_dir) -> Iterator[Service]:  # type: ignore[no-untyped-def]
    svc = Service(Settings(data_dir=data_dir, dev_mode=False, rate_limit_rps=5.0, **KEYS),
                  now=NOW)
    yield svc
    svc.close()


def _key(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name]}


def test_each_scope_opens_its_own_routes_only(prod: Service) -> None:
    body = {"user_id": "u1", "scene": "guess_you_like", "n": 3}
    event = {"events": [{"event_id": "k1", "type": "click", "user_id": "u1", "item_id": 1,
                         "tracking": "v1.x"}]}
    with TestClient(create_app(prod, rebuild=False)) as client:
        r = client.post("/v1/recommend", json=body)
        assert r.status_code == 401 and r.json()["detail"][0]["field"] == "X-API-Key"
        assert client.post("/v1/recommend", json=body, headers=_key("read_key")
                           ).status_code == 200
        assert client.post("/v1/recommend", json=body, headers=_key("admin_key")
                           ).status_code == 200  # admin implies read
        r = client.post("/v1/recommend", json=body, headers=_key("ingest_key"))
        assert r.status_code == 403 and "ingest key cannot read" in r.text
        assert client.post("/v1/events", json=event, headers=_key("read_key")
                           ).status_code == 403
        r = client.post("/v1/events", json=event, headers=_key("ingest_key"))
        assert r.status_code == 200 and r.json()["results"][0]["status"] == "quarantined"
        assert client.put("/v1/items", json={"items": []}, headers=_key("ingest_key")
                          ).status_code == 403
        r = client.post("/v1/recommend", json=body, headers={"X-API-Key": "guess"})
        assert r.status_code == 403 and "unknown key" in r.text
        # probes answer without a key: the cluster has none
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "down": []}


def test_dev_mode_lets_keyless_reads_and_events_through_but_not_admin(service: Service
                                                                      ) -> None:
    body = {"scene": "feed", "user_id": "u1", "n": 2}
    with TestClient(create_app(service, rebuild=False)) as client:
        assert client.post("/v1/recommend", json=body).status_code == 200
        assert client.put("/v1/users", json={"users": [{"user_id": "u1"}]}).status_code == 401
        assert client.post("/v1/recommend", json=body,
                           headers={"X-API-Key": "wrong"}).status_code == 403


def test_rate_limit_is_per_client_key_with_retry_after(prod: Service) -> None:
    body = {"scene": "feed", "user_id": "u1", "n": 2}
    with TestClient(create_app(prod, rebuild=False)) as client:
        codes = [client.post("/v1/recommend", json=body, headers=_key("read_key")).status_code
                 for _ in range(14)]
        assert codes[:10] == [200] * 10  # a burst of 2 s at 5/s
        limited = client.post("/v1/recommend", json=body, headers=_key("read_key"))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # another client key has its own bucket; probes are never limited
        assert client.post("/v1/recommend", json=body, headers=_key("admin_key")
                           ).status_code == 200
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
        assert 'tuijian_requests_refused_total{reason="rate_limited"}' in metrics


def test_token_bucket_refills_at_its_rate() -> None:
    b = TokenBuckets(rate=2.0, burst_s=1.0)
    assert [b.take("k", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert b.take("k", 0.0) == pytest.approx(0.5)
    assert b.take("k", 0.5) == 0.0  # one token back after 0.5 s
    assert b.take("other", 0.5) == 0.0


async def test_overload_is_shed_with_503_not_queued(data_dir) -> None:  # type: ignore[no-untyped-def]
    svc = Service(Settings(data_dir=data_dir, max_inflight=2), now=NOW)
    gate = asyncio.Event()
    real = svc.pipeline.recommend

    async def slow(req):  # type: ignore[no-untyped-def]
        await gate.wait()
        return await real(req)

    svc.pipeline.recommend = slow  # type: ignore[method-assign]
    app = create_app(svc, rebuild=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            body = {"scene": "feed", "user_id": "u1", "n": 2}
            held = [asyncio.create_task(client.post("/v1/recommend", json=body))
                    for _ in range(2)]
            await asyncio.sleep(0.2)
            shed = await client.post("/v1/recommend", json=body)
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
            assert shed.json()["detail"][0]["field"] == "request"
            assert (await client.get("/healthz")).status_code == 200  # still alive
            gate.set()
            assert [(await t).status_code for t in held] == [200, 200]
            assert (await client.post("/v1/recommend", json=body)).status_code == 200
    finally:
        svc.close()


def test_placeholders_refused_outside_dev_and_secrets_never_printed(
        data_dir, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="read_key: .*placeholder") as exc:
        Settings.from_env(data_dir=data_dir, dev_mode=False,
                          **{**KEYS, "read_key": "REPLACE_ME"})
    assert "REPLACE_ME" not in str(exc.value)
    with pytest.raises(ConfigError, match="must differ"):
        Settings.from_env(data_dir=data_dir, dev_mode=False,
                          **{**KEYS, "read_key": KEYS["ingest_key"]})
    s = Settings(data_dir=data_dir, dev_mode=False, stream_url="redis://:pw@h:6379/0",
                 **KEYS)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("tuijian").info("settings: %r / %s", s, s)
    for secret in [*KEYS.values(), "pw@h"]:
        assert secret not in caplog.text and secret not in repr(s)


def test_framework_refusals_share_the_error_shape_and_apps_can_be_rebuilt(service: Service
                                                                          ) -> None:
    create_app(service, rebuild=False)  # a second app on one service (metrics registered once)
    with TestClient(create_app(service, rebuild=False)) as client:
        r = client.get("/v1/nowhere")
        assert r.status_code == 404 and r.json()["detail"][0]["field"] == "path"
        r = client.delete("/v1/recommend")
        assert r.status_code == 405 and r.json()["detail"][0]["field"] == "method"
        assert "allow" in r.headers
        r = client.post("/v1/events", content=b"\xff\xfe{", headers={"content-type":
                                                                      "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["detail"][0]["field"] == "body"
        schema = client.get("/openapi.json").json()
        documented = schema["paths"]["/v1/recommend"]["post"]["responses"]["422"]
        assert documented["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut")
