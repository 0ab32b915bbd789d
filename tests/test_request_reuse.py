"""A request whose every part is constant is built once per VU and sent again;
anything templated is still rendered for each iteration."""

from __future__ import annotations


def test_templated_parts_render_every_iteration_constant_ones_are_resent(target, write_plan, run_plan):
    plan = write_plan(f"""
        target: {target.url}
        metrics:
          seen: counter
        scenarios:
          s: {{executor: per-vu-iterations, vus: 2, iterations: 3, exec: f}}
        flows:
          f:
            - request: {{name: constant, url: "/echo?c=1", headers: {{X-Fixed: "yes"}}, json: {{a: 1}}}}
            - check: {{json: {{"$.query.c": "1", "$.headers.X-Fixed": "yes", "$.body": '{{"a":1}}'}}}}
            - request: {{name: templated, url: "/echo?i={{{{ iter }}}}", headers: {{X-Vu: "{{{{ vu }}}}"}}}}
            - record: {{metric: seen, value: "{{{{ response.json.query.i | int + 10 * (response.json.headers['X-Vu'] | int) }}}}"}}
    """)
    code, doc = run_plan(plan)
    assert code == 0
    assert target.hits["/echo"] == 12
    checks = doc["metrics"]["checks"]["total"]
    assert checks["passes"] == 6 * 3 and checks["fails"] == 0
    # iterations 0, 1, 2 of VUs 1 and 2: (0+1+2) * 2 + 10 * 3 * (1+2)
    assert doc["metrics"]["seen"]["total"]["count"] == 6 + 90
    sent = {tuple(sorted(p["tags"].items())): p["sink"]["count"]
            for p in doc["metrics"]["data_sent"]["by_tags"]}
    constant = [v for tags, v in sent.items() if ("name", "constant") in tags]
    assert len(constant) == 1 and constant[0] % 6 == 0  # six sends of one same-sized request
