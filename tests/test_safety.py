"""Safety caps, the host allowlist, live keys, bounded bodies and masked secrets."""

from __future__ import annotations

import time

from loadaction.cli import main


def test_max_requests_cap_stops_the_run(target, write_plan, run_plan, capsys):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, iterations: 100, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    code, doc = run_plan(plan, "--max-requests", "50")
    assert code == 3
    assert target.hits["/ok"] == 50
    assert doc["status"] == "capped"
    assert "max-requests cap of 50 reached" in capsys.readouterr().err


def test_max_rps_paces_requests(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: shared-iterations, vus: 10, iterations: 40, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    start = time.monotonic()
    code, _ = run_plan(plan, "--max-rps", "40")
    assert code == 0
    assert time.monotonic() - start >= 0.95  # 40 requests at 40/s
    assert target.hits["/ok"] == 40


def test_max_duration_refuses_a_longer_plan(target, write_plan, capsys):
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: constant-vus, duration: 10m, exec: f}}
        flows:
          f: [{{request: {{url: /ok}}}}]
    """)
    assert main(["run", str(plan), "--max-duration", "1m"]) == 2
    err = capsys.readouterr().err
    assert "--max-duration" in err and target.hits["/ok"] == 0


def test_a_templated_url_to_a_host_outside_the_allowlist_is_refused(target, write_plan, run_plan):
    other = target.url.replace("127.0.0.1", "127.0.0.2")
    plan = write_plan(f"""
        target: {target.url}
        vars: {{other: "{other}"}}
        scenarios:
          s: {{executor: per-vu-iterations, iterations: 3, exec: f}}
        flows:
          f: [{{request: {{url: "{{{{ vars.other }}}}/ok"}}}}]
    """)
    code, doc = run_plan(plan)
    assert target.hits["/ok"] == 0
    assert doc["errors"][0]["count"] == 3
    assert "127.0.0.2 refused" in doc["errors"][0]["message"]


def test_redirects_to_other_hosts_are_not_followed(target, write_plan, run_plan):
    other = target.url.replace("127.0.0.1", "127.0.0.2")
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - request: {{url: "/redirect?to={other}/ok"}}
            - request: {{url: "/redirect?to=/json"}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/ok"] == 0 and target.hits["/json"] == 1
    assert any("not followed" in n for n in doc["notices"])


def test_live_stripe_keys_are_refused_unless_allowed(target, write_plan, capsys, monkeypatch):
    monkeypatch.setenv("STRIPE_KEY", "sk_live_abcdef123456")
    plan = write_plan(f"""
        target: {target.url}
        secrets: [STRIPE_KEY]
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f: [{{request: {{url: /ok, headers: {{Authorization: "Bearer {{{{ secrets.STRIPE_KEY }}}}"}}}}}}]
    """)
    assert main(["run", str(plan), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "STRIPE_KEY" in err and "--allow-live-keys" in err and "sk_live_abcdef" not in err
    assert target.hits["/ok"] == 0
    assert main(["run", str(plan), "--quiet", "--allow-live-keys"]) == 0
    assert target.hits["/ok"] == 1


def test_response_bodies_are_read_up_to_a_bound(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        defaults: {{maxBodySize: 64KB}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f: [{{request: {{url: "/big?chunks=64"}}}}]
    """)
    code, doc = run_plan(plan)
    assert code == 0
    received = doc["metrics"]["data_received"]["total"]["count"]
    assert received < 2 * 65536  # not the 4 MiB the server offered


def test_secrets_never_reach_output_or_results(target, write_plan, run_plan, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("API_TOKEN", "tok-very-secret-123")
    plan = write_plan(f"""
        target: {target.url}
        secrets: [API_TOKEN]
        metrics: {{token_value: trend}}
        scenarios:
          s: {{executor: per-vu-iterations, exec: f}}
        flows:
          f:
            - request: {{url: "/echo?token={{{{ secrets.API_TOKEN }}}}"}}
            - record: {{metric: token_value, value: "{{{{ secrets.API_TOKEN }}}}"}}
    """)
    code, doc = run_plan(plan)
    out = capsys.readouterr()
    text = out.out + out.err + (tmp_path / "out" / "results.json").read_text()
    assert "tok-very-secret-123" not in text
    assert any("***" in e["message"] for e in doc["errors"])
