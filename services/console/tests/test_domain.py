"""The console's pure parts: CSV cells, metric totals, chart escaping, the rule form."""

from __future__ import annotations

import csv
import io
import re

import pytest

from crm_console.domain.charts import bar_chart, heat_map
from crm_console.domain.csv_rows import Column, cell, header_line, item_line
from crm_console.domain.flow_diagram import Flow, flow_diagram, flows_of_matrix
from crm_console.domain.health import metric_totals, service_health
from crm_console.domain.playbook_forms import form_of_rule, outcomes_by_rule, rule_body


def test_csv_cells_defuse_formulas_and_flatten_money_and_lists() -> None:
    assert cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert cell("@SUM(A1)") == "'@SUM(A1)"
    assert cell({"amount": "12.50", "currency": "USD"}) == "12.50"
    assert cell(["a", "b"]) == "a;b"
    assert cell(None) == ""
    assert cell(-0.5) == "-0.5"  # a number stays a number
    assert cell(True) == "true"


def test_csv_lines_parse_back_with_quotes_and_nested_paths() -> None:
    columns = (Column("id", "customer_id"), Column("segment", "scores.rfm_segment"))
    text = header_line(columns) + item_line(
        {"customer_id": 'c,"1"', "scores": {"rfm_segment": "Champions"}}, columns
    )
    assert list(csv.DictReader(io.StringIO(text))) == [{"id": 'c,"1"', "segment": "Champions"}]


def test_metric_totals_sum_over_labels_and_skip_comments() -> None:
    exposition = (
        "# HELP dead_letters_total Events sent to a dead-letter topic\n"
        '# TYPE dead_letters_total counter\ndead_letters_total{topic="crm.orders"} 2.0\n'
        'dead_letters_total{topic="crm.scores"} 1.0\noutbox_pending 4.0\n'
        "outbox_oldest_unsent_age_seconds 95.5\noutbox_parked_rows 0.0\n"
    )
    assert metric_totals(exposition)["dead_letters_total"] == 3.0
    health = service_health("profile-service", True, exposition)
    assert (health.dead_letters, health.outbox_pending) == (3, 4)
    assert health.stuck  # the oldest unsent event waited more than a minute
    assert not service_health("x", None, None).stuck


def test_chart_text_is_escaped() -> None:
    svg = str(bar_chart([("<script>alert(1)</script>", 3)], "Segments & tiers"))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "Segments &amp; tiers" in svg
    grid = str(heat_map(["a"], ["b", "c"], [[0.5, None]], "t"))
    assert grid.count("<rect") == 1  # a None cell stays blank


def test_flow_bands_are_as_thick_as_their_moves_and_read_out_in_the_description() -> None:
    flows = flows_of_matrix(["(new)", "active"], ["active", "at risk"], [[300, 0], [0, 100]])
    assert flows == [Flow("(new)", "active", 300), Flow("active", "at risk", 100)]
    svg = str(flow_diagram(flows, "Moves <90 days>", element_id="moves"))
    thickness = [
        float(match.group(2)) - float(match.group(1))
        for match in re.finditer(
            r'd="M[\d.]+,([\d.]+) .*? L[\d.]+,[\d.]+ C[^"]*? [\d.]+,([\d.]+) Z"', svg
        )
    ]
    assert len(thickness) == 2
    assert thickness[0] == pytest.approx(3 * thickness[1], rel=0.01)
    assert 'aria-labelledby="moves-title moves-desc"' in svg
    assert (
        '<desc id="moves-desc">400 stage moves. (new) to active: 300; active to at risk: 100.'
        in svg
    )
    assert "Moves &lt;90 days&gt;" in svg
    empty = str(flow_diagram([], "t", element_id="e"))
    assert "No stage moves in the period." in empty
    assert "flow-band" not in empty


def test_the_rule_form_round_trips_and_leaves_judging_to_the_service() -> None:
    rule = {
        "rule_id": "r",
        "name": "Win back",
        "enabled": True,
        "event_type": "churn.warning",
        "template_id": "t",
        "channels": ["email", "sms"],
        "category": "marketing",
        "priority": 5,
        "delay": "P1D",
        "conditions": {"tiers": ["growth"]},
    }
    body, errors = rule_body(form_of_rule(rule).values)
    assert errors == {}
    assert body == {k: v for k, v in rule.items() if k != "rule_id"}

    body, errors = rule_body({"priority": "high", "conditions": "{not json"})
    assert body["priority"] == "high"  # the service says what is wrong with it
    assert "not valid JSON" in errors["conditions"]
    assert body["enabled"] is False  # an unticked box is absent from the form


def test_outcomes_are_gathered_per_rule_with_suppressions_by_reason() -> None:
    found = outcomes_by_rule(
        [
            {"rule_id": "r", "status": "sent", "reason": None, "messages": 3},
            {"rule_id": "r", "status": "suppressed", "reason": "no_consent", "messages": 2},
            {"rule_id": "r", "status": "suppressed", "reason": "capped", "messages": 1},
            {"rule_id": None, "status": "scheduled", "reason": None, "messages": 4},
        ]
    )
    assert found["r"].sent == 3
    assert found["r"].suppressed_total == 3
    assert found["r"].suppressed["no_consent"] == 2
    assert found["send-now"].waiting == 4
