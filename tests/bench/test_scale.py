"""bench.scale's arithmetic and its page: the line to 500 sites comes from completed runs only, and
a run that ran out of memory or whose round failed is shown as such, never as a number."""

from __future__ import annotations

from bench.report import scale
from bench.scale import extrapolate


def _done(sites: int, superlink_mb: float, superlink_cpu: float) -> dict[str, object]:
    return {
        "sites": sites,
        "completed": True,
        "round_wall_s": 100.0 + sites,
        "orchestration_overhead_per_site_s": 1.5,
        "clientapp_start_cpu_s_per_message": 1.5,
        "messages_per_site": 4,
        "messages_asked_again": 3,
        "answers_at_once": 4,
        "superlink_cpu_s_per_site": superlink_cpu / sites,
        "cpu_s_by_process": {"superlink": superlink_cpu, "clientapp": 8.0 * 4 * sites},
        "peak_pss_mb": {
            "superlink": superlink_mb,
            "coordinator": 1000.0,
            "sites_resident": 10.0,
            "clientapp": 20.0,
        },
        "min_available_mb": 9000,
    }


def test_the_line_to_500_sites_goes_through_the_two_largest_completed_runs() -> None:
    runs = [
        _done(5, 300.0, 10.0),
        _done(10, 400.0, 20.0),
        _done(20, 600.0, 40.0),
        {"sites": 50, "completed": False, "stopped_for_memory_at": "x", "memory_floor_mb": 1500.0},
    ]
    line = extrapolate(runs, 500)
    assert line is not None and line["from_runs"] == [10, 20]
    assert line["superlink_pss_mb_per_site"] == 20.0 and line["superlink_pss_mb"] == 600.0 + 20.0 * 480
    assert line["superlink_cpu_s"] == 1000.0
    assert extrapolate(runs[:1] + runs[3:], 500) is None  # one completed run draws no line


def test_the_page_shows_completed_stopped_and_failed_runs_for_what_they_are() -> None:
    stopped = {
        "sites": 50,
        "completed": False,
        "stopped_for_memory_at": "round: synthesizing: foundation: 2/50 sites answered",
        "memory_floor_mb": 1500.0,
        "peak_pss_mb": {"sites_resident": 9119.0, "clientapp": 12903.0},
        "min_available_mb": 1268,
    }
    failed = {
        "sites": 20,
        "completed": False,
        "round_state": "failed",
        "round_message": "only 18 of 20 sites answered",
        "peak_pss_mb": {"sites_resident": 1.0, "clientapp": 2.0},
        "min_available_mb": 5000,
    }
    page = "\n".join(
        scale(
            {
                "goal_overhead_per_site_s": 2.0,
                "runs": [_done(10, 400.0, 20.0), failed, stopped],
                "extrapolated": None,
            }
        )
    )
    assert "| 10 | 4 | 110 | 1.50 | 1.50 | 8.00 | 3 |" in page
    assert "stopped, under 1500 MB free, at: round: synthesizing: foundation: 2/50 sites answered" in page
    assert "round failed: only 18 of 20 sites answered" in page
    assert "Goal: at most 2 s" in page
