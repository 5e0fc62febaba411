"""The reliability report as Markdown: one table per scenario, the command, and the raw figures.

>>> print(render({"fuzz": {"injected_invalid": 5, "dlq_records": 5}}, None, "streamrec reliability --quick"))
... # doctest: +ELLIPSIS
# Reliability...| injected invalid records | 5 |...
"""

from __future__ import annotations

from typing import Any

import orjson

ROWS: dict[str, list[tuple[str, str]]] = {
    "crash": [
        ("crashes (kill -9 at random points under load)", "crashes"), ("event rate (events/s)", "rate_events_s"),
        ("consumer group membership (static = STREAMREC_INSTANCE_ID set)", "membership"),
        ("events in the log", "events_in_log"), ("users compared with a replay of the log", "users"),
        ("lost updates", "lost_updates"), ("double-applied updates", "double_applied_updates"),
        ("users whose state differs from the replay", "users_mismatched"),
        ("events without a recommendation", "events_without_recommendation"),
        ("duplicate recommendation messages (at-least-once replays)", "duplicate_recommendations"),
        ("offsets the consumer skipped, read back and processed in order (worker logs)", "consumer_skips_repaired"),
        ("commits held back, not to pass unprocessed events (worker logs, at most one line per 10 s)",
         "commits_held_back_logged"),
        ("recovery p50 (s, kill -9 to first recommendation of the new process)", "recovery_s.p50"),
        ("recovery p95 (s)", "recovery_s.p95"), ("recovery max (s)", "recovery_s.max"),
    ],
    "broker": [
        ("broker down (s, stop to accepting again)", "broker_down_s"), ("events acknowledged", "events_acked"),
        ("send failures reported to the producer", "events_send_failed"),
        ("acknowledged events missing from the log", "acked_but_missing_from_log"),
        ("acknowledged events without a recommendation", "acked_without_recommendation"),
        ("lost updates", "lost_updates"), ("double-applied updates", "double_applied_updates"),
        ("worker still running (never restarted)", "worker_alive"), ("worker restarts", "worker_restarts"),
        ("worker resumed after the broker was back (s)", "worker_resumed_s_after_broker_up"),
    ],
    "fuzz": [
        ("records", "records"), ("fuzzed share", "share"), ("injected invalid records", "injected_invalid"),
        ("records sent to the DLQ", "dlq_records"),
        ("DLQ records caused by internal errors (bugs)", "dlq_internal_errors"),
        ("valid records with extra fields (must be processed)", "valid_with_extra_fields"),
        ("valid events", "valid_events"), ("valid events processed", "valid_processed"),
        ("worker crashes", "worker_crashes"), ("lost updates", "lost_updates"),
        ("double-applied updates", "double_applied_updates"),
    ],
    "models": [
        ("bad artifacts refused", "refused"), ("bad artifacts tried", "total"),
        ("pickle marker file created", "marker_created"), ("old version kept serving", "old_version_kept_serving"),
    ],
    "soak": [
        ("worker capacity (events/s, measured on a backlog)", "capacity_events_s"),
        ("soak length (s)", "soak.seconds"), ("soak rate (events/s, 70 % of capacity)", "soak.rate_events_s"),
        ("soak events", "soak.events"), ("RSS start / end / max (MiB)", "soak.rss_start_mib|soak.rss_end_mib|soak.rss_max_mib"),
        ("memory slope after warm-up (MiB/min)", "soak.rss_slope_mib_per_min"), ("warm-up (s)", "soak.warmup_s"),
        ("max lag (records)", "soak.lag_max"), ("lag p95, second half (records)", "soak.lag_p95_second_half"),
        ("lag slope, second half (records/min)", "soak.lag_slope_per_min_second_half"),
        ("burst length (s)", "burst.seconds"),
        ("normal / burst rate (events/s)", "burst.normal_rate_events_s|burst.burst_rate_events_s"),
        ("max lag in the burst (records)", "burst.lag_max"), ("lag drained after the burst (s)", "burst.drain_s"),
        ("rebalances during the burst", "burst.rebalances"), ("RSS max in the burst (MiB)", "burst.rss_max_mib"),
        ("worker alive (no out-of-memory)", "burst.worker_alive"),
    ],
    "failover": [
        ("brokers", "brokers"), ("events: replicas / min.insync.replicas", "replication.events"),
        ("recommendations: replicas / min.insync.replicas", "replication.recommendations"),
        ("state changelog: replicas / min.insync.replicas", "replication.changelog"),
        ("event rate (events/s, producer acks=all)", "rate_events_s"),
        ("killed broker (kill -9, the leader of the most partitions)", "killed_broker"),
        ("partitions it led", "killed_broker_led"),
        ("events acknowledged", "events_acked"), ("send failures reported to the producer", "events_send_failed"),
        ("acknowledged events missing from the log", "acked_but_missing_from_log"),
        ("acknowledged events without a recommendation", "acked_without_recommendation"),
        ("events without a recommendation", "events_without_recommendation"),
        ("users whose state differs from a replay of the log", "users_mismatched"),
        ("lost updates / double-applied updates", "lost_updates|double_applied_updates"),
        ("duplicate recommendation messages (resent after the failover)", "duplicate_recommendations"),
        ("worker still running / restarts", "worker_alive|worker_restarts"),
        ("first recommendation generated after the kill (s)", "first_recommendation_after_kill_s"),
        ("first one on a partition the killed broker led (s)", "first_recommendation_on_killed_leaders_partitions_s"),
        ("every partition answering again (s)", "all_partitions_answering_s"),
        ("leaders moved off the killed broker (s, kill to new leaders and ISR)", "leaders_moved_s"),
        ("broker down (s, kill to serving again) / its restart (s)", "broker_down_s|broker_restart_s"),
        ("all replicas in sync again after the restart (s)", "replicas_in_sync_after_restart_s"),
        ("max lag before / after the kill (records)", "lag_max_before_kill|lag_max_after_kill"),
    ],
    "catalogue": [
        ("events / acknowledged by the broker", "events|acked"), ("distinct items streamed (about)", "distinct_items_about"),
        ("event rate (events/s)", "rate_events_s"), ("STREAMREC_MAX_ITEMS / headroom", "max_items|headroom"),
        ("most items held / at the end", "items_held_max|items_held_end"), ("items forgotten", "forgotten"),
        ("RSS when the catalogue was first full / at the end / max (MiB)",
         "rss_when_full_mib|rss_mib_at.100%|rss_max_mib"),
        ("RSS at 10 / 25 / 50 / 75 % of the stream (MiB)", "rss_mib_at.10%|rss_mib_at.25%|rss_mib_at.50%|rss_mib_at.75%"),
        ("memory slope once full (MiB/min)", "rss_slope_after_full_mib_per_min"),
        ("event loop late at most (ms): whole run / after warm-up / p99 bucket",
         "loop_lag_max_ms|loop_lag_max_after_warmup_ms|loop_lag_p99_bucket_ms"),
        ("micro-batch scoring p50 / p99 bucket (ms)", "batch_scoring_bucket.p50_ms|batch_scoring_bucket.p99_ms"),
        ("events answered / all answered", "answered|all_answered"),
        ("longest stretch with events waiting and none answered (s)", "longest_stall_s"),
        ("of 20 users, lists naming a hot item at the end", "hot_in_lists_of_20_users"),
        ("worker alive", "worker_alive"),
    ],
}

TITLES = {
    "crash": "1. Crash: kill -9 under load",
    "broker": "2. Broker restart under load",
    "fuzz": "3. Bad input",
    "models": "4. Bad models",
    "soak": "5-6. Soak and burst",
    "failover": "7. Broker failover (three brokers)",
    "catalogue": "8. Ever new items against a bounded catalogue",
}


def _get(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return "-"
        d = d[part]
    return d


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def render(results: dict[str, Any], cfg: Any, command: str, notes: str = "") -> str:
    """The Markdown report of ``results`` (as returned by :func:`run_suite`)."""
    lines = ["# Reliability", "", "Produced by:", "", "```", command, "```", ""]
    meta = results.get("meta")
    if meta:
        lines += [f"Run {meta.get('started')} on {meta.get('machine')}, Python {meta.get('python')}.", ""]
    if notes:
        lines += [notes.strip(), ""]
    for name, rows in ROWS.items():
        if name not in results:
            continue
        fig = results[name]
        lines += [f"## {TITLES[name]}", ""]
        if "error" in fig:
            lines += [f"**The scenario did not finish:** `{fig['error']}`", ""]
            continue
        lines += ["| figure | value |", "|---|---|"]
        for label, path in rows:
            value = " / ".join(_fmt(_get(fig, p)) for p in path.split("|"))
            lines.append(f"| {label} | {value} |")
        if name == "models":
            lines += ["", "| artifact | refused | reason |", "|---|---|---|"]
            for case, r in fig.get("cases", {}).items():
                reason = str(r.get("reason") or "").replace("|", "/")[:160]
                lines.append(f"| {case} | {_fmt(r.get('refused'))} | {reason} |")
        if name == "fuzz" and fig.get("injected_by_kind"):
            lines += ["", "Injected invalid records by kind: "
                      + ", ".join(f"{k} {v}" for k, v in fig["injected_by_kind"].items()) + "."]
        if fig.get("scenario_seconds") is not None:
            lines += ["", f"Scenario time: {fig['scenario_seconds']} s."]
        lines.append("")
    lines += ["## Raw figures", "", "```json",
              orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode(), "```", ""]
    return "\n".join(lines)
