"""One open warning per customer across a merge: which warning the survivor carries on."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from lifecycle_service.domain.churn_warnings import (
    ChurnWarningRecord,
    WarningStatus,
    warnings_after_merge,
)

SURVIVOR, MERGED = "c-survivor", "c-merged"
AT = datetime(2025, 3, 1, tzinfo=UTC)


def warnings_of(customer_id: str) -> st.SearchStrategy[ChurnWarningRecord | None]:
    """No warning, or one in any status, belonging to ``customer_id``."""
    record = st.builds(
        ChurnWarningRecord,
        warning_id=st.uuids().map(str),
        customer_id=st.just(customer_id),
        status=st.sampled_from(WarningStatus),
        raised_at=st.just(AT),
        changed_at=st.just(AT),
        reasons=st.just(("spend_dropped",)),
        churn_risk=st.none(),
        value_tier=st.none(),
        grade=st.none(),
        predicted_clv_12m=st.none(),
        recommended_action=st.just("retention_offer"),
    )
    return st.none() | record


def is_open(warning: ChurnWarningRecord | None) -> bool:
    return warning is not None and warning.is_open


@given(warnings_of(SURVIVOR), warnings_of(MERGED))
def test_never_two_open_warnings_and_no_open_warning_lost_for_nothing(
    survivor: ChurnWarningRecord | None, merged: ChurnWarningRecord | None
) -> None:
    after = warnings_after_merge(survivor, merged, SURVIVOR)
    # The open warnings the survivor ends with: the carried one, and the merged customer's open
    # one unless it is dropped or is the one carried over.
    carried_open = [after.carried] if is_open(after.carried) else []
    carried_id = after.carried.warning_id if after.carried is not None else None
    left_behind = (
        merged is not None
        and merged.is_open
        and not after.drops_merged_open
        and merged.warning_id != carried_id
    )
    assert len(carried_open) + int(left_behind) <= 1
    # An open warning is only dropped when the survivor has its own open one.
    assert after.drops_merged_open == (is_open(survivor) and is_open(merged))
    # Whenever either had an open warning, the survivor carries one.
    assert is_open(after.carried) == (is_open(survivor) or is_open(merged))


@given(warnings_of(SURVIVOR), warnings_of(MERGED))
def test_the_survivors_open_warning_stands_and_a_moved_one_is_rekeyed(
    survivor: ChurnWarningRecord | None, merged: ChurnWarningRecord | None
) -> None:
    after = warnings_after_merge(survivor, merged, SURVIVOR)
    if is_open(survivor):
        assert after.carried == survivor
    elif is_open(merged):
        assert merged is not None
        assert after.carried is not None
        assert after.carried.warning_id == merged.warning_id
        assert after.carried.customer_id == SURVIVOR
        assert after.carried.status == merged.status
    else:
        # Nothing open on the merged side: the survivor's warning (or none) is untouched.
        assert after.carried == survivor
    assert after.carried is None or after.carried.customer_id == SURVIVOR
