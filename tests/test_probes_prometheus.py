"""The prometheus probe against a real aiohttp server serving a
prometheus_client registry: selectors with labels and regexes, deltas, the
slope of a gauge that grows linearly, budgets that pass and fail (exit 99
through the CLI), and a target that breaks: 500, garbage, no series, dead."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from loadaction.cli import main
from loadaction.report import render
from tests.probe_servers import MetricsTarget, serve_metrics


@pytest.fixture
def metrics() -> Iterator[MetricsTarget]:
    with serve_metrics() as target:
        yield target


def _plan(target: MetricsTarget, budgets: str, *, duration: str = "1500ms",
          interval: str = "100ms", extra: str = "") -> str:
    return f"""
target: {target.url}
probes:
  app:
    prometheus: {{url: /metrics}}
    interval: {interval}
    metrics:
      memory: process_resident_memory_bytes
      pool_a: 'demo_db_pool_in_use{{pool="a"}}'
      pool_re: 'demo_db_pool_in_use{{pool=~"b|c", pool!="c"}}'
      errors_5xx:
        series: 'demo_http_requests_total{{status=~"5.."}}'
        delta: true
{extra}
thresholds:
{budgets}
scenarios:
  s: {{executor: constant-vus, vus: 1, duration: {duration}, exec: f}}
flows:
  f: [{{request: {{url: /ok}}}}, {{think: 50ms}}]
"""


def _by_tags(doc: dict, metric: str) -> dict[tuple, dict]:
    return {tuple(sorted(part["tags"].items())): part["sink"]
            for part in doc["metrics"][metric]["by_tags"]}


def test_selectors_delta_and_linear_slope(metrics, write_plan, run_plan):
    start = time.monotonic()
    rate_per_s = 1000.0  # bytes per second: 60,000 per minute
    lock = threading.Lock()

    def on_scrape(now: float) -> None:
        with lock:
            metrics.memory.set(rate_per_s * (now - start))
            metrics.pool.labels(pool="a").set(3)
            metrics.pool.labels(pool="b").set(5)
            metrics.pool.labels(pool="c").set(9)
            metrics.requests.labels(status="500").inc(2)
            metrics.requests.labels(status="503").inc(1)
            metrics.requests.labels(status="200").inc(10)

    metrics.requests.labels(status="500").inc(40)  # before the run: a delta does not count it
    metrics.on_scrape = on_scrape
    plan = write_plan(_plan(metrics, """
  memory{probe:app}: ["slope>0", "max>0"]
  pool_a: ["last==3", "max<4"]
  pool_re: ["max==5"]
"""))
    code, doc = run_plan(plan)
    assert code == 0, doc["thresholds"]
    assert [t["verdict"] for t in doc["thresholds"]] == ["pass"] * 5
    probe = doc["probes"]["probes"][0]
    assert probe["name"] == "app" and probe["kind"] == "prometheus" and probe["errors"] == 0
    assert probe["samples"] > 0 and probe["enabled"] is True

    # one series per status that matched the regex; delta: increase over the run
    errors = _by_tags(doc, "errors_5xx")
    assert set(errors) == {(("probe", "app"), ("status", "500")),
                           (("probe", "app"), ("status", "503"))}
    n = errors[(("probe", "app"), ("status", "503"))]["count"]
    assert errors[(("probe", "app"), ("status", "500"))]["last"] == 2 * (n - 1)
    assert errors[(("probe", "app"), ("status", "503"))]["min"] == 0
    assert set(_by_tags(doc, "pool_re")) == {(("pool", "b"), ("probe", "app"))}

    # the slope: 60,000 per minute, give or take what the sample times show of
    # the delay between the server reading its clock and the probe reading the run's
    series = next(s for s in doc["probes"]["series"] if s["metric"] == "memory")
    points = series["points"]
    assert len(points) >= 5
    lateness = [t - v / rate_per_s for t, v in points]
    span = points[-1][0] - points[0][0]
    tolerance = max(0.01, 4 * (max(lateness) - min(lateness)) / span)
    slope = doc["metrics"]["memory"]["total"]["slope"]
    assert slope == pytest.approx(rate_per_s * 60, rel=tolerance)
    # the first sample is taken when the load starts (t=0), not an interval later;
    # its time is when it was read, so allow a stalled runner a third of the run
    assert points[0][0] < 0.5


def test_budgets_on_probe_metrics_fail_with_exit_99(metrics, write_plan, tmp_path, capsys):
    start = time.monotonic()
    metrics.on_scrape = lambda now: (metrics.memory.set(5000 * (now - start)),
                                     metrics.pool.labels(pool="a").set(7))
    plan = write_plan(_plan(metrics, """
  memory: ["slope<1000"]
  pool_a: ["max<5", "last==3"]
"""))
    code = main(["run", str(plan), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 99
    assert "memory" in out and "slope<1000" in out and "pool_a" in out and "max<5" in out


@pytest.mark.parametrize(("mode", "kind"), [
    ("500", "http_status"), ("garbage", "parse"), ("none", "no_series"), ("slow", "timeout"),
    ("nan", "not_a_number")])
def test_a_broken_metrics_url_is_counted_errors_and_no_data(metrics, write_plan, run_plan,
                                                            mode, kind):
    metrics.mode = mode
    plan = write_plan(_plan(metrics, '  memory: ["max<1"]', duration="600ms")
                      .replace("    interval: 100ms", "    interval: 200ms\n    timeout: 150ms"))
    code, doc = run_plan(plan)
    assert code == 99
    assert doc["thresholds"][0]["verdict"] == "no data"
    probe = doc["probes"]["probes"][0]
    assert probe["samples"] == 0 and probe["errors"] > 0
    # NaN is a series that matched (memory), the others match nothing there
    kinds = {kind, "no_series"} if mode == "nan" else {kind}
    assert set(probe["errors_by_kind"]) == kinds
    assert probe["last_error"]
    counted = _by_tags(doc, "probe_errors")
    assert sum(s["count"] for s in counted.values()) == probe["errors"]
    assert counted.pop((("probe", "app"),))["count"] == 0  # the zero every probe starts with
    assert set(counted) == {(("error", k), ("probe", "app")) for k in kinds}


def test_the_probe_target_dies_mid_run(metrics, write_plan, run_plan):
    def on_scrape(now: float) -> None:
        metrics.memory.set(100)
        if len(metrics.scrapes) == 4:
            threading.Thread(target=metrics.stop).start()

    metrics.on_scrape = on_scrape
    # the load goes elsewhere (a second server) so the run itself goes on
    with serve_metrics() as load:
        plan = write_plan(_plan(metrics, '  memory: ["max<=100", "last==100"]',
                                duration="2s").replace(f"target: {metrics.url}",
                                                           f"target: {load.url}")
                          .replace("url: /metrics", f"url: {metrics.url}/metrics")
                          + f"allowedHosts: ['127.0.0.1:{metrics.url.rsplit(':', 1)[1]}']\n")
        code, doc = run_plan(plan)
    assert code == 0, doc["thresholds"]
    probe = doc["probes"]["probes"][0]
    # the scrapes that answered before it died (the fourth may be cut off by its death)
    samples = probe["samples"]
    assert samples in (3, 4) and doc["metrics"]["memory"]["total"]["count"] == samples
    assert probe["errors_by_kind"]["connect"] > 0  # every scrape after it died
    assert probe["errors_by_kind"]["no_series"] == samples * 3  # the other selectors: unset
    assert "127.0.0.1" in probe["last_error"]
    md = render(doc, "md")  # the report says what happened
    assert "#### Probes" in md and "connect" in md
    assert doc["metrics"]["http_reqs"]["total"]["count"] > 0


def test_a_disallowed_static_host_is_refused_at_load(write_plan, capsys):
    plan = write_plan("""
target: http://127.0.0.1:9
probes:
  app:
    prometheus: {url: "http://metrics.example.com/metrics"}
    metrics: {memory: process_resident_memory_bytes}
scenarios:
  s: {executor: shared-iterations, vus: 1, iterations: 1, exec: f}
flows:
  f: [{request: {url: /ok}}]
""")
    assert main(["validate", str(plan)]) == 2
    err = capsys.readouterr().err
    assert f"{plan}:4:" in err and "metrics.example.com" in err and "allowed hosts" in err


def test_a_templated_url_to_a_disallowed_host_is_refused_each_interval(metrics, write_plan,
                                                                        run_plan):
    """Checked at load start (the URL is known only then): nothing is sent,
    every interval is a host_not_allowed error, a budget on it is no data."""
    with serve_metrics() as other:  # allowed by nobody: another port than the target's
        port = other.url.rsplit(":", 1)[1]
        plan = write_plan(_plan(metrics, '  memory: ["max<1"]', duration="600ms",
                                interval="200ms")
                          .replace("prometheus: {url: /metrics}",
                                   "prometheus: {url: \"http://localhost:{{ vars.port }}/metrics\"}")
                          + f"vars: {{port: '{port}'}}\n")
        code, doc = run_plan(plan)
        assert other.scrapes == []
    assert code == 99 and doc["thresholds"][0]["verdict"] == "no data"
    probe = doc["probes"]["probes"][0]
    assert set(probe["errors_by_kind"]) == {"host_not_allowed"}
    assert probe["errors"] >= 3  # t=0, 0.2, 0.4 at least
    assert "localhost" in probe["last_error"] and "allowed hosts" in probe["last_error"]


def test_a_templated_url_on_the_default_port_matches_host_and_port(metrics, write_plan, run_plan):
    """`allowedHosts: [localhost:80]` allows `http://localhost/...`: the URL's port is 80."""
    plan = write_plan(_plan(metrics, '  memory: ["max<1"]', duration="400ms", interval="200ms")
                      .replace("prometheus: {url: /metrics}",
                               "prometheus: {url: \"http://{{ 'localhost' }}/metrics\"}")
                      + "allowedHosts: ['localhost:80']\n")
    code, doc = run_plan(plan)
    probe = doc["probes"]["probes"][0]
    assert probe["errors"] > 0 and "host_not_allowed" not in probe["errors_by_kind"], probe
