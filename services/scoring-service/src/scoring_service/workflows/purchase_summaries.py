"""Purchase summaries (PostgreSQL): one row a customer, their counted orders merged per day.

The order stream pays almost nothing for them: triggers on `purchases` (migration
2026_12_09b) append the customers of every changed order to `stale_purchase_summaries`, in
the writing statement. A whole-base read (a fit, the scheduled re-score) first refreshes the
summaries of those customers only, in one set-based statement, then reads one row a customer
in key order instead of sorting every order of the base.

Refreshing at intake instead (re-reading a touched customer's orders in the batch's
transaction) cost about 35 us of PostgreSQL per customer on the order stream (branch
`fitsummary`, bench/RESULTS.md); here that work is done once per fit for each customer
touched since the last one, however many orders touched them.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime, hold_job_lock

_logger = logging.getLogger("crm.scoring.summaries")

# One statement, so one snapshot: the marks it deletes are exactly those of the changes it
# reads (a change committed after the snapshot keeps its mark for the next refresh). The
# customers left with no counted order lose their row; the others are upserted: a delete and
# an insert of one key in one statement would collide. The emptied ones are found by an index
# probe of their orders, not by comparing with `fresh`: with the CTEs' row estimates (200) the
# planner may join two CTEs by a nested loop, 10,000 x 10,000 string compares at 10% of 100,000.
REFRESH_TOUCHED = """
with touched as (
    delete from stale_purchase_summaries returning customer_id
), customers as (
    select distinct customer_id from touched
), per_day as (
    select p.customer_id, p.purchase_day,
           sum(p.amount - p.refunded)::float8 as net, count(*)::int4 as orders
    from purchases p join customers c on c.customer_id = p.customer_id
    where p.placed_at is not null and not p.cancelled
      and (p.refunded = 0 or p.amount - p.refunded > 0)
    group by p.customer_id, p.purchase_day
), fresh as (
    select customer_id,
           string_agg(int4send(purchase_day), ''::bytea order by purchase_day) as days,
           string_agg(float8send(net), ''::bytea order by purchase_day) as amounts,
           string_agg(int4send(orders), ''::bytea order by purchase_day) as orders
    from per_day group by customer_id
), emptied as (
    delete from purchase_summaries s using customers c
    where s.customer_id = c.customer_id
      and not exists (select 1 from purchases p
                      where p.customer_id = c.customer_id and p.placed_at is not null
                        and not p.cancelled and (p.refunded = 0 or p.amount - p.refunded > 0))
), stored as (
    insert into purchase_summaries (customer_id, days, amounts, orders)
    select customer_id, days, amounts, orders from fresh
    on conflict (customer_id) do update
    set days = excluded.days, amounts = excluded.amounts, orders = excluded.orders
)
select count(*) from customers
"""

# The erased customer's summary goes at once unless a refresh holds it (that refresh's fit may
# run for minutes; the consumer must not wait): the mark the erasure left removes it then.
_FORGET = """
delete from purchase_summaries where customer_id in (
    select customer_id from purchase_summaries where customer_id = :customer_id
    for update skip locked
)
"""


async def refresh_stale_summaries(session: AsyncSession) -> int:
    """Re-derive the summaries of customers whose orders changed since; how many there were."""
    started = time.perf_counter()
    refreshed = int(await session.scalar(text(REFRESH_TOUCHED)) or 0)
    _logger.info(
        "purchase summaries refreshed",
        extra={"customers": refreshed, "seconds": round(time.perf_counter() - started, 3)},
    )
    return refreshed


async def refresh_between_fits(runtime: ServiceRuntime, fit_job: str) -> None:
    """The scheduled refresh: at a fit only the customers touched since the last tick are left
    to refresh (10% of a million customers cost a fit about 3 s). Skipped while a fit or a
    whole-base re-score holds `fit_job`: two refreshes would upsert the same rows."""
    async with runtime.sessions() as session, session.begin():
        if session.get_bind().dialect.name != "postgresql":
            return
        if await hold_job_lock(session, fit_job):
            await refresh_stale_summaries(session)


async def forget_summary(session: AsyncSession, customer_id: str) -> None:
    """Erasure: the customer's summary, now if no refresh holds it, else at the next refresh."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(_FORGET), {"customer_id": customer_id})
