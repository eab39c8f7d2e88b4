"""The dashboard plots GPU use from the GPU ledger's assignments (issue 17)."""

from __future__ import annotations

import re

from labfleet.services.dashboard import gpu_count, render_page
from labfleet.services.history import Sample


def _figure(page: str, caption: str) -> str:
    match = re.search(
        rf"<figure class=\"lf-figure\"><figcaption>{re.escape(caption)}</figcaption>(.*?)</figure>",
        page,
        re.S,
    )
    assert match, f"no figure {caption!r}"
    return match.group(1)


def test_gpu_count_reads_the_ledger_string() -> None:
    assert gpu_count(None) == 0
    assert gpu_count("") == 0
    assert gpu_count("0") == 1
    assert gpu_count("GPU-1a, MIG-2b") == 2


def test_gpu_plots_show_in_use_over_time_and_per_server_for_the_viewer_only() -> None:
    samples = [
        Sample(100.0, {"ann": {"user": "ann", "profile": "gpu", "gpus": "0"}}),
        Sample(
            160.0,
            {
                "ann": {"user": "ann", "profile": "gpu", "gpus": "0, 1"},
                "bob": {"user": "bob", "profile": "gpu", "gpus": "2"},
            },
        ),
    ]
    admin = render_page(samples, "", "root", True, "Team")
    over_time = _figure(admin, "GPUs in use over time")
    assert "<polyline" in over_time
    per_server = _figure(admin, "GPUs per server")
    assert "ann" in per_server and "bob" in per_server
    member = render_page(samples, "", "bob", False, "Team")
    assert "ann" not in _figure(member, "GPUs per server")
    assert "GPUs" in member


def test_without_gpus_the_plots_say_so() -> None:
    page = render_page([Sample(1.0, {"c": {"user": "c", "profile": "cpu"}})], "", "c", False, "T")
    assert "no GPUs assigned" in _figure(page, "GPUs per server")
