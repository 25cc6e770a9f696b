"""The text ``make demo`` prints: what a retention team would look at after the CDNOW replay."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Final

from crm_devstack.cdnow import CALIBRATION_END
from crm_devstack.demo import ChurnHoldout, DemoReport

_BAR_WIDTH: Final = 30
_SENT: Final = "sent"
_SUPPRESSED: Final = "suppressed"
_REASONS: Final = {
    "no_consent": "marketing needs an opt-in for the channel, and nobody gave one here",
    "no_contact": "no channel reaches them (no email address; no account-manager webhook set)",
    "no_longer_applies": "bought again since the trigger (or the trigger is too old)",
    "frequency_cap": "the marketing cap was used up",
    "lower_priority": "a more valuable message took the slot",
    "unsubscribed": "the customer opted out",
    "duplicate": "already sent for this event",
    "rule_disabled": "the rule was switched off",
    "holdout": "in the rule's control group, left alone to measure its effect (see below)",
}


def render_report(report: DemoReport) -> str:
    """Everything the replay found, as plain text for the terminal."""
    sections = [
        _replay(report),
        _stages(report.stages),
        _named_counts(
            "RFM segments", "scoring-service /v1/segments", report.segments["rfm_segments"]
        ),
        _named_counts("Value tiers", "current x potential value", report.segments["value_tiers"]),
        _named_counts("Grades", "by value score", report.segments["grades"]),
        _clusters(report.segments["clusters"]),
        _churn_calibration(report.model.get("churn_calibration"), report.churn_holdout),
        _warnings(report.warnings),
        _feedback(report),
        _messages(report.messages, report.rule_order),
    ]
    return "\n\n".join(sections) + "\n"


def _replay(report: DemoReport) -> str:
    model, sweep = report.model, report.sweep
    bg, gg = model.get("bg_nbd") or {}, model.get("gamma_gamma") or {}
    lines = [
        f"CDNOW replay: {report.orders:,} purchases of {report.customers:,} customers up to "
        f"{CALIBRATION_END}, published as order.placed with their own times",
        f"  models fitted as of {CALIBRATION_END} on {model['customers']:,} customers "
        f"in {model['fit_seconds']:.1f} s",
    ]
    if bg:
        lines.append(
            f"    BG/NBD      r={bg['r']:.3f}  alpha={bg['alpha']:.3f}  a={bg['a']:.3f}  "
            f"b={bg['b']:.3f}   (Fader, Hardie & Lee 2005: 0.243, 4.414, 0.793, 2.426)"
        )
    if gg:
        lines.append(
            f"    Gamma-Gamma p={gg['p']:.3f}  q={gg['q']:.3f}  v={gg['v']:.3f}"
            "              (published: 6.25, 3.74, 15.44)"
        )
    lines += [f"    note: {note}" for note in model.get("notes", [])]
    lines.append(
        f"  aging sweep as of {CALIBRATION_END}: {sweep['reviewed']:,} reviewed, "
        f"{sweep['moved']:,} moved, {sweep['warnings_raised']:,} warnings raised or updated, "
        f"{sweep['warnings_closed']:,} closed"
    )
    steps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report.seconds.items())
    lines.append(f"  took: {steps}")
    return "\n".join(lines)


def _churn_calibration(calibration: dict[str, Any] | None, holdout: ChurnHoldout | None) -> str:
    title = "Churn risk calibration (scoring-service /v1/models/{version}: churn_calibration)"
    if not calibration:
        return f"{title}\n  none: the churn risk is published uncalibrated (see the notes above)"
    split = date(1970, 1, 1) + timedelta(days=int(calibration["split_as_of_day"]))
    figures = calibration["on_split"]
    lines = [
        title,
        f"  churn risk = chance of no purchase within {calibration['churn_horizon_days']} days; "
        f"calibrated on who stayed silent in the {calibration['split_horizon_days']} days after "
        f"{split}{_shorter_splits(calibration)}, as forecast by BG/NBD fitted on the purchases "
        "before (cross-fitted figures on the longest split; ECE if calibrated: what sampling "
        "noise alone gives a perfectly calibrated forecast)",
        f"    {'':<22}{'mean':>7}{'silent':>8}{'ROC AUC':>9}{'Brier':>8}{'ECE':>8}"
        f"{'ECE if calibrated':>22}",
    ]
    for name, key in (("model exp(-E)", "uncalibrated"), ("calibrated", "calibrated")):
        q = figures[key]
        # A version fitted before the noise floor was reported has no such figure.
        noise = (
            f"{q['ece_if_calibrated']:>15.4f} +-{q['ece_if_calibrated_sd']:.3f}"
            if "ece_if_calibrated" in q
            else ""
        )
        lines.append(
            f"    {name:<22}{q['mean_predicted']:>7.3f}{q['observed']:>8.3f}"
            f"{q['roc_auc'] or 0:>9.3f}{q['brier']:>8.4f}{q['ece']:>8.4f}{noise}"
        )
    if not calibration.get("used", True):
        lines.append(
            "    not used: it did worse than the model on the split (Brier), so the churn risk "
            "is published as the model's exp(-E)"
        )
    deciles = "  ".join(
        f"{b['mean_predicted']:.2f}/{b['observed']:.2f}"
        for b in figures["calibrated"]["reliability"]
    )
    lines.append(f"    calibrated per decile (predicted/silent): {deciles}")
    if holdout is not None:
        silent = sum(holdout.silent) / len(holdout.silent)
        lines.append(
            f"  holdout: of {len(holdout.silent):,} customers, {silent:.3f} bought nothing in the "
            f"{holdout.horizon_days} days after {CALIBRATION_END} (from the purchases file)"
        )
        for name, values in (("published", holdout.published), ("model exp(-E)", holdout.model)):
            mean = sum(values) / len(values)
            brier = sum((p - y) ** 2 for p, y in zip(values, holdout.silent, strict=True)) / len(
                values
            )
            lines.append(f"    {name:<22}mean {mean:.3f}  Brier {brier:.4f}")
    return "\n".join(lines)


def _shorter_splits(calibration: dict[str, Any]) -> str:
    shorter = calibration.get("pooled_split_horizons_days", [])[1:]
    if not shorter:
        return ""
    days = " and ".join(str(h) for h in shorter)
    return f" (pooled with the last {days} days before the end)"


def _stages(stages: dict[str, Any]) -> str:
    rows = [(row["stage"], int(row["customers"])) for row in stages["stages"]]
    title = (
        f"Lifecycle stages at the end of {stages['at']} (lifecycle-service /v1/analytics/stages)"
    )
    return _table_with_bars(title, rows, int(stages["total"]))


def _named_counts(title: str, source: str, sizes: Sequence[dict[str, Any]]) -> str:
    rows = [(str(size["name"]), int(size["customers"])) for size in sizes]
    return _table_with_bars(f"{title} ({source})", rows, sum(count for _, count in rows))


def _table_with_bars(title: str, rows: Sequence[tuple[str, int]], total: int) -> str:
    width = max((len(name) for name, _ in rows), default=0)
    most = max((count for _, count in rows), default=0) or 1
    lines = [title]
    for name, count in rows:
        share = count / total if total else 0.0
        bar = "#" * round(_BAR_WIDTH * count / most)
        lines.append(f"  {name:<{width}}  {count:>6,}  {share:6.1%}  {bar}".rstrip())
    lines.append(f"  {'total':<{width}}  {total:>6,}")
    return "\n".join(lines)


def _clusters(clusters: Sequence[dict[str, Any]]) -> str:
    lines = [f"Behavioural clusters (K-means on recency, frequency and spend; K={len(clusters)})"]
    width = max((len(str(cluster["name"])) for cluster in clusters), default=0)
    for cluster in clusters:
        lines.append(
            f"  {cluster['cluster_id']}  {cluster['name']:<{width}}  {cluster['customers']:>6,}"
            f"  last bought {cluster['centroid_recency_days']:.0f} days ago,"
            f" {cluster['centroid_frequency']:.1f} purchases, ${cluster['centroid_monetary']:,.0f}"
        )
    return "\n".join(lines)


def _warnings(warnings: dict[str, Any]) -> str:
    header = f"  {'value tier':<24}  {'open':>6}  {'saved':>6}  {'lost':>6}  save rate"
    lines = ["Churn warnings by value tier (lifecycle-service /v1/analytics/warnings)", header]
    for row in [*warnings["tiers"], {**warnings["total"], "value_tier": "total"}]:
        rate = "-" if row["save_rate"] is None else f"{row['save_rate']:.0%}"
        lines.append(
            f"  {row['value_tier']:<24}  {row['open']:>6,}  {row['saved']:>6,}  "
            f"{row['lost']:>6,}  {rate:>9}"
        )
    lines.append(
        "  open: no purchase yet and not expired; saved: bought after the warning; lost: expired"
    )
    return "\n".join(lines)


def _feedback(report: DemoReport) -> str:
    counts, nps = report.feedback, report.nps
    period = counts["period"]
    lines = [
        f"Feedback, SIMULATED ({report.feedback_events:,} reports drawn at random for the"
        f" replay's customers: CDNOW has no feedback; lifecycle-service /v1/analytics/feedback,"
        f" {period['from']} to {period['to']})",
    ]
    width = max(len(kind) for kind in counts["counts"])
    lines += [f"  {kind:<{width}}  {n:>6,}" for kind, n in counts["counts"].items()]
    lines.append(f"  {'total':<{width}}  {counts['total']:>6,}")
    overall = nps["overall"]
    score = "-" if overall["nps"] is None else f"{overall['nps']:+.1f}"
    lines.append(
        f"  NPS {score} from {overall['answers']:,} answers: {overall['promoters']:,} promoters,"
        f" {overall['passives']:,} passives, {overall['detractors']:,} detractors"
        " (/v1/analytics/nps)"
    )
    for segment in nps["segments"]:
        value = "-" if segment["nps"] is None else f"{segment['nps']:+.1f}"
        lines.append(
            f"    {segment['segment']:<20}  NPS {value:>6} from {segment['answers']:>5,} answers"
        )
    return "\n".join(lines)


def _messages(messages: Counter[tuple[str, str, str]], rule_order: Sequence[str]) -> str:
    total = sum(messages.values())
    by_status: Counter[str] = Counter()
    by_rule: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    reasons: Counter[str] = Counter()
    for (rule, status, detail), count in messages.items():
        by_status[status] += count
        by_rule[rule][status][detail] += count
        if status == _SUPPRESSED:
            reasons[detail] += count
    lines = [
        f"Messages decided by notification-service (/v1/notifications): {total:,}",
        "  " + ", ".join(f"{status} {count:,}" for status, count in by_status.most_common()),
    ]
    rules = [*rule_order, *sorted(set(by_rule) - set(rule_order))]
    width = max((len(rule) for rule in rules if rule in by_rule), default=0)
    for rule in (rule for rule in rules if rule in by_rule):
        outcomes = by_rule[rule]
        parts = [
            f"{status} {_spelled(outcomes[status])}"
            for status in (_SENT, _SUPPRESSED, *sorted(set(outcomes) - {_SENT, _SUPPRESSED}))
            if status in outcomes
        ]
        lines.append(f"  {rule:<{width}}  " + "; ".join(parts))
    if reasons:
        lines.append("  suppressed because:")
        lines += [
            f"    {reason:<18} {count:>6,}  {_REASONS.get(reason, '')}"
            for reason, count in reasons.most_common()
        ]
    return "\n".join(lines)


def _spelled(counts: Counter[str]) -> str:
    return ", ".join(f"{count:,} {what}" for what, count in _most_first(counts.items()))


def _most_first(items: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(items, key=lambda item: (-item[1], item[0]))
