"""CDNOW purchases replayed through the real broker reproduce the published model figures."""

from __future__ import annotations

import asyncio
import csv
from collections import defaultdict
from datetime import date

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from crm_contracts import Topic, build_event, encode_event
from crm_shared import Scope
from crm_shared.testing import ApiClient
from scoring_service.db.models import Purchase
from scoring_testing import DATA, cdnow_purchases

pytestmark = pytest.mark.kafka
CALIBRATION_END = date(1997, 9, 30)


def roc_auc(scores: list[float], positives: list[bool]) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    ranked = sorted(zip(scores, positives, strict=True), key=lambda pair: pair[0])
    rank_sum, position, i = 0.0, 0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (position + 1 + position + (j - i)) / 2
        rank_sum += average_rank * sum(1 for _, positive in ranked[i:j] if positive)
        position += j - i
        i = j
    n_pos = sum(positives)
    n_neg = len(positives) - n_pos
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


async def replay(api: ApiClient) -> int:
    """Publish every CDNOW purchase as `order.placed`, keyed by customer, with its own time."""
    settings = api.app.state.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        sent = []
        for purchase in cdnow_purchases():
            order = purchase.as_order()
            event = build_event(order, source="/tests/cdnow", time=order.placed_at)
            sent.append(
                await producer.send(Topic.ORDERS, encode_event(event), key=event.subject.encode())
            )
        await asyncio.gather(*sent)
        return len(sent)
    finally:
        await producer.stop()


async def wait_for_ledger(api: ApiClient, expected: int) -> None:
    sessions = api.app.state.runtime.sessions
    for _ in range(600):
        async with sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Purchase))
        if count == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"ledger holds {count} purchases, expected {expected}")


async def all_scores(api: ApiClient) -> list[dict]:
    items, cursor = [], None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/scores", params=params)).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_cdnow_replay_reproduces_published_estimates(scoring_with_broker: ApiClient) -> None:
    api = scoring_with_broker
    assert await replay(api) == 6_919
    await wait_for_ledger(api, 6_919)

    fitted = await api.post(
        "/v1/models/fit", Scope.ADMIN, json={"as_of": "1997-09-30T00:00:00Z"}, timeout=120
    )
    assert fitted.status_code == 201, fitted.text
    model = fitted.json()
    bg, gg = model["bg_nbd"], model["gamma_gamma"]
    assert model["customers"] == 2_357
    assert [round(bg[k], 3) for k in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert round(bg["log_likelihood"], 1) == -9582.4
    assert gg["p"] == pytest.approx(6.249, abs=0.01)
    assert gg["q"] == pytest.approx(3.745, abs=0.01)
    assert gg["v"] == pytest.approx(15.448, abs=0.01)
    assert gg["log_likelihood"] == pytest.approx(-4055.92, abs=0.01)

    # The model version endpoint shows how the churn risk is calibrated, and how well it did.
    shown = (await api.get(f"/v1/models/{model['version']}")).json()["churn_calibration"]
    assert shown == model["churn_calibration"]
    assert shown["churn_horizon_days"] == 90
    assert shown["split_horizon_days"] == 90
    before, after = shown["on_split"]["uncalibrated"], shown["on_split"]["calibrated"]
    assert len(after["reliability"]) == 10
    assert after["ece"] < before["ece"]
    assert after["brier"] <= before["brier"]

    scores = {s["customer_id"]: s for s in await all_scores(api)}
    assert len(scores) == 2_357
    with (DATA / "cdnow_customers_summary_with_transactions.csv").open() as summary:
        for row in csv.DictReader(summary):
            inputs = scores[f"cdnow-{int(row['ID']):04d}"]["explanation"]["model_inputs_weeks"]
            assert int(inputs["x"]) == int(row["x"]), row
            assert round(inputs["t_x"], 2) == float(row["t_x"]), row
            assert round(inputs["T"], 2) == float(row["T"]), row

    # Churn risk (calibrated) must rank who buys nothing in the 39 holdout weeks better than
    # recency alone.
    bought_later: dict[str, bool] = defaultdict(bool)
    for purchase in cdnow_purchases():
        bought_later[purchase.customer] |= purchase.day > CALIBRATION_END
    ids = sorted(scores)
    silent = [not bought_later[cid] for cid in ids]
    churn_auc = roc_auc([scores[cid]["scores"]["churn_risk"] for cid in ids], silent)
    recency_auc = roc_auc(
        [scores[cid]["explanation"]["rfm"]["recency_days"] for cid in ids], silent
    )
    print(f"ROC AUC churn risk {churn_auc:.4f} vs recency only {recency_auc:.4f}")
    assert churn_auc > recency_auc
