"""The scale-out report's table: every run's row, a failed run named with its reason."""

from __future__ import annotations

from stream_app.ops.bench.scaleout import scaleout_table


def test_the_table_has_a_row_per_run_and_says_which_failed():
    run = {"workers": 1, "share_items": True, "ndcg@10": 0.2270, "ndcg_vs_first_group": 1.0, "hr@10": 0.3294,
           "events_per_s": 999.1, "shared_bytes_out_per_event": 52.9, "shared_bytes_in_per_event": 52.9,
           "shared_lag_ms": {"p50": 25.0, "p99": None}}
    failed = {"workers": 4, "share_items": False, "error": "the partitions never split across the 4 workers\nmore"}
    lines = scaleout_table({"runs": [run, failed]}).splitlines()
    assert len(lines) == 4
    assert lines[2] == "| 1 | on | 0.2270 | 1.0 | 0.3294 | 999 | 52.9, 52.9 | ≤25, – |"
    assert lines[3].startswith("| 4 | off | failed: the partitions never split") and "more" not in lines[3]
