"""Over HTTP: photos hashed at ingest, display styles, the chosen creative in tracking params,
clicks credited to the creative, and dedup / rule reports in the response."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tuijian.data.images import encode_jpeg, image_hash, render_photo, repost_copy
from tuijian.display.render import render_items
from tuijian.domain import Candidates
from tuijian.serving.api import create_app
from tuijian.serving.service import Service

from ..conftest import ADMIN


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(create_app(service, rebuild=False)) as c:
        yield c


def _item(item_id: int, images: list[dict[str, Any]], title: str,
          price: float = 2500) -> dict[str, Any]:
    return {"item_id": item_id, "line": "goods", "category": "phone", "city": "Beijing",
            "district": "Chaoyang", "title": title, "price": price, "images": images,
            "publisher_id": item_id}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_photos_are_hashed_at_ingest_and_bad_ones_refused(client: TestClient) -> None:
    photo = render_photo(5)
    jpeg = encode_jpeg(photo)
    png = io.BytesIO()
    photo.save(png, "PNG")
    items = [_item(9_000_001, [{"id": "a", "data": _b64(jpeg)},
                               {"id": "b", "data": _b64(png.getvalue())}], "Phone one")]
    assert client.put("/v1/items", headers=ADMIN, json={"items": items}).status_code == 200
    got = client.get("/v1/items/9000001").json()
    assert got["images"] == ["a", "b"]
    assert got["image_hashes"][0] == image_hash(jpeg)
    assert bin((got["image_hashes"][0] ^ got["image_hashes"][1]) & (2**64 - 1)).count("1") <= 4

    bad = [_item(9_000_002, [{"id": "x", "data": _b64(b"not an image at all")}], "Phone")]
    r = client.put("/v1/items", headers=ADMIN, json={"items": bad})
    assert r.status_code == 422 and "images" in r.text and "decod" in r.text.lower()
    r = client.put("/v1/items", headers=ADMIN,
                   json={"items": [_item(9_000_003, [{"id": "x", "data": "@@"}], "Phone")]})
    assert r.status_code == 422 and "base64" in r.text
    r = client.put("/v1/items", headers=ADMIN,
                   json={"items": [_item(9_000_004, [{"id": "x"}], "Phone")]})
    assert r.status_code == 422 and "exactly one of data" in r.text
    assert client.get("/v1/items/9000002").status_code == 404  # nothing stored


def test_response_carries_style_creative_and_rule_reports(client: TestClient,
                                                          service: Service) -> None:
    rec = client.post("/v1/recommend", json={"scene": "guess_you_like", "user_id": "u7",
                                             "n": 12}).json()
    assert rec["display"]["style"] == "card" and "image" in rec["display"]["fields"]
    codec = service.codec
    with_photo = [it for it in rec["items"] if "creative" in it.get("image", {})]
    assert with_photo, rec["items"][:2]
    for it in with_photo:
        stored = client.get(f"/v1/items/{it['item_id']}").json()["images"]
        assert it["image"]["creative"] in stored
        assert codec.decode(it["tracking"]).creative == it["image"]["creative"]
    assert isinstance(rec["rules"], dict)
    assert all(set(v) <= {"removed", "moved", "added"} for v in rec["rules"].values())

    it = with_photo[0]
    before = {s.creative: s.clicks for s in service.pipeline.creatives.stats(it["item_id"])}
    events = [{"event_id": "click-creative", "type": "click", "user_id": "u7",
               "item_id": it["item_id"], "tracking": it["tracking"]}]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    after = {s.creative: s.clicks for s in service.pipeline.creatives.stats(it["item_id"])}
    assert after[it["image"]["creative"]] == before.get(it["image"]["creative"], 0) + 1


def test_items_without_photos_get_a_generated_card(client: TestClient,
                                                   service: Service) -> None:
    items = [_item(9_000_010, [], "Huawei P60, like new, ¥2500")]
    assert client.put("/v1/items", headers=ADMIN, json={"items": items}).status_code == 200
    rec = client.post("/v1/recommend", json={"scene": "detail_related", "user_id": "u8",
                                             "n": 50, "context": {"item_id": 9_000_010}})
    assert rec.status_code == 200, rec.text
    store = service.catalog.store
    idx = np.array([store.position(9_000_010)])
    strategies = service.strategies.display
    [card] = render_items(Candidates.placed(idx, np.ones(1), 0), store, strategies["d_card"],
                          service.pipeline.choose_creatives(Candidates.placed(idx, np.ones(1), 0),
                                                      strategies["d_card"]))
    url = f"/v1/items/{9_000_010}/creative.png?template=classic"
    assert card["image"] == {"generated": url} and card["style"] == "card"
    [text] = render_items(Candidates.placed(idx, np.ones(1), 0), store, strategies["d_text"])
    assert "image" not in text and text["style"] == "text"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size[0] > 100


def test_near_duplicate_reposts_never_share_a_list(client: TestClient) -> None:
    """Three re-posts of one phone (same photo re-uploaded, title lightly edited) plus a
    different phone: a list shows at most one of the re-posts."""
    rng = np.random.default_rng(1)
    photo = render_photo(77)
    title = "Apple iPhone 13 128GB, like new, battery 95%, box and charger, ¥3200"
    items = [_item(9_000_020 + k, [{"id": f"p{k}", "data": _b64(repost_copy(photo, rng))}],
                   title + (" !" * k), price=3200) for k in range(3)]
    items.append(_item(9_000_030, [{"id": "q", "data": _b64(encode_jpeg(render_photo(78)))}],
                       "Xiaomi 13, used, scratches on the back, ¥3200", price=3200))
    assert client.put("/v1/items", headers=ADMIN, json={"items": items}).status_code == 200
    context = {"city": "Beijing", "filters": {"line": "goods", "district": "Chaoyang",
                                              "price_min": 3150, "price_max": 3250}}
    r = client.post("/v1/recommend", json={"scene": "search_fallback", "user_id": "u9",
                                           "n": 50, "context": context})
    assert r.status_code == 200, r.text
    shown = {it["item_id"] for it in r.json()["items"]}
    assert 9_000_030 in shown  # the search found the new listings
    assert len(shown & {9_000_020, 9_000_021, 9_000_022}) == 1
    assert r.json()["rules"]["dedup"]["removed"] >= 2
