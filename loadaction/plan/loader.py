"""`load_plan`: plan files and command-line inputs in, a validated Plan out.

Everything that can be checked without sending a request is checked here,
in one pass that stops at the first mistake; the engine never re-validates.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.plan.chaos import (
    assigned_vars, parse_chaos, phase_values, select_faults, shift_faults,
)
from loadaction.plan.data import parse_data
from loadaction.plan.durations import parse_size
from loadaction.plan.fields import (
    check_keys, expect_bool, expect_choice, expect_duration, expect_map, expect_str, required,
)
from loadaction.plan.hosts import PLACEHOLDER_TARGET, UnsetTarget, allowed_hosts, resolve_target
from loadaction.plan.executors import executor_length
from loadaction.plan.includes import PlanDocument, read_plan
from loadaction.plan.limits import check_concurrency
from loadaction.plan.lint import fault_warnings, template_strings, threshold_warnings, unset_env
from loadaction.plan.metrics import (
    BUILTIN_METRICS, parse_metrics, parse_regressions, parse_thresholds,
)
from loadaction.plan.model import (
    HTTP_CLIENTS, Fault, Flow, JsonPath, Limits, MetricDecl, Plan, PlanWarning, RegressionBudget,
    Renderable, Scenario, Threshold,
)
from loadaction.metrics.registry import CHAOS_METRICS
from loadaction.plan.probes import PROBE_ERRORS, Probe, parse_probes
from loadaction.plan.segments import FULL_TUPLE, Execution
from loadaction.plan.overrides import QuickOverrides, apply_quick_overrides, overridden_scenario
from loadaction.plan.profiles import parse_profiles, select_profile
from loadaction.plan.references import check_references
from loadaction.plan.requests import parse_headers
from loadaction.plan.safety import check_live_keys, check_max_duration
from loadaction.plan.scenarios import parse_scenario
from loadaction.plan.source import Entry, Map, Node, ReadBudget, Scalar, Seq, collections_paused
from loadaction.plan.steps import FlowParser
from loadaction.plan.template_cache import CachedTemplates
from loadaction.plan.templates import Static, Templates, is_template
from loadaction.plan.websocket import check_update_writes

DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_BODY = 1 << 20


def load_plan(path: str | Path, *, target: str | None = None, profile: str | None = None,
              scenarios: Sequence[str] = (), vars: Mapping[str, str] = MappingProxyType({}),
              env: Mapping[str, str] | None = None, limits: Limits = Limits(),
              extra_allowed_hosts: Sequence[str] = (), placeholders: bool = False,
              overrides: QuickOverrides = QuickOverrides(),
              execution: Execution = FULL_TUPLE) -> Plan:
    """Read, validate and compile a plan; raise one PlanError at the first problem.

    `target` (--target) replaces the plan's target, `vars` (--var) replace or
    add plan vars, `scenarios` keeps only the named ones, `profile` scales
    the plan, `overrides` (--vus, --duration, --stage, --iterations) replace
    one scenario's executor as k6's shortcuts do, `execution` (--shard,
    --execution-segment) is the share of it this process runs (kept beside
    the whole plan: executors and unique data take their share), and `env`
    (default: os.environ) feeds `env.*` and secrets.
    Mistakes that still validate become the plan's `warnings`.

    `placeholders` (validate): secrets and environment variables that are
    not set are not errors but warnings (`unset`), and the plan is checked
    with placeholder values for them, and a placeholder target when the
    target reads one; such a plan must not run.
    """
    with collections_paused():  # a large plan is a large tree of small objects
        return _load_plan(path, target=target, profile=profile, scenarios=scenarios, vars=vars,
                          env=env, limits=limits, extra_allowed_hosts=extra_allowed_hosts,
                          placeholders=placeholders, overrides=overrides, execution=execution)


def _load_plan(path: str | Path, *, target: str | None, profile: str | None,
               scenarios: Sequence[str], vars: Mapping[str, str],
               env: Mapping[str, str] | None, limits: Limits,
               extra_allowed_hosts: Sequence[str], placeholders: bool,
               overrides: QuickOverrides, execution: Execution) -> Plan:
    env = dict(os.environ if env is None else env)
    warnings: list[PlanWarning] = []
    plan_path = Path(path)
    budget = ReadBudget()  # also records every file read: the plan's inputs_sha256
    document = read_plan(plan_path, budget=budget)
    root = document.root
    name_node = root.get("name")
    name = expect_str(name_node, "name") if name_node is not None else plan_path.stem
    _check_selection(scenarios, document.named["scenarios"])
    templates = CachedTemplates()
    plan_target, unset_target = _target(root, target, templates, env, placeholders, warnings)
    target_references = len(templates.references)
    hosts = allowed_hosts(plan_target, root, extra_allowed_hosts)
    if unset_target is not None:
        hosts = AnyHost(hosts)
    secrets, declared_secrets = _secrets(document.secrets, env, placeholders, warnings)
    metrics = parse_metrics(document.named["metrics"])
    data = parse_data(document.named["data"], budget.inputs)
    plan_vars = _vars(document.named["vars"], vars, templates)
    defaults = _defaults(root.get("defaults"), templates)
    headers, timeout, max_body = defaults.headers, defaults.timeout, defaults.max_body

    flow_parser = FlowParser(templates, metrics, hosts)
    flows = {flow: flow_parser.parse_flow(flow, entry.value, entry.key_source)
             for flow, entry in document.named["flows"].items()}
    setup = _hook(root, "setup", flow_parser)
    teardown = _hook(root, "teardown", flow_parser)
    check_update_writes(flow_parser.websocket.writes, flow_parser.request_names)

    profiles = parse_profiles(root.get("profiles"), document.named["scenarios"])
    chosen = select_profile(profiles, profile)
    overridden = overridden_scenario(overrides, document.named["scenarios"], scenarios)
    own_vars = {var for var, _ in plan_vars}
    faults = parse_chaos(root.get("chaos"), templates=templates, flows=flows,
                         scenarios=document.named["scenarios"], profile=chosen,
                         vars=own_vars | assigned_vars(setup), secrets=declared_secrets)
    phases = phase_values(faults) if faults else None
    probes = parse_probes(root.get("probes"), templates=templates, target=plan_target,
                          allowed_hosts=hosts,
                          taken={*BUILTIN_METRICS, *CHAOS_METRICS, *metrics})
    # probe samples are gauges (and their errors a counter) that budgets may name
    budget_metrics = {**metrics, **_probe_metrics(probes)}
    thresholds = parse_thresholds(document.thresholds, budget_metrics,
                                  document.named["scenarios"], phases=phases)
    regressions = parse_regressions(document.regressions, budget_metrics,
                                    document.named["scenarios"], phases=phases)
    selected: list[Scenario] = []
    for scenario_name, entry in document.named["scenarios"].items():
        shaped_by = chosen
        if scenario_name == overridden:  # --vus, --duration, --stage, --iterations
            entry, shaped_by = apply_quick_overrides(entry, overrides, chosen, scenario_name)
        scenario, own_thresholds, own_regressions = parse_scenario(
            scenario_name, entry, flows=flows, metrics=budget_metrics, profile=shaped_by,
            phases=phases)
        thresholds.extend(own_thresholds)
        regressions.extend(own_regressions)
        if not scenarios or scenario_name in scenarios:
            selected.append(scenario)
    if not selected:
        raise PlanError("the plan has no scenarios", Source(root.source.file, 1))
    running = {scenario.name for scenario in selected}
    chaos = select_faults(faults, running)
    if scenarios:
        selected, chaos = _start_at_once(selected, chaos)
    running_phases = set(phase_values(chaos)) if chaos else set()
    thresholds = [threshold for threshold in thresholds
                  if _applies(threshold, running, running_phases)]
    regressions = [budget for budget in regressions if _applies(budget, running, running_phases)]

    check_references(templates.references, vars=own_vars | flow_parser.defined_vars,
                     secrets=declared_secrets, data=data)
    if not limits.allow_live_keys:
        check_live_keys(_live_key_candidates(document, vars, secrets, templates, env))
    check_max_duration(selected, limits.max_duration)
    check_concurrency(selected, executor_length)

    # Unset environment variables templates read (the target's only when it is used).
    references = templates.references[target_references if target is not None else 0:]
    for env_name, source in unset_env(references, _template_strings(document), env).items():
        if env_name == unset_target:
            continue
        warnings.append(PlanWarning(
            f"environment variable '{env_name}' is not set"
            + ("; validated with a placeholder" if placeholders else ""), source, unset=env_name))
        if placeholders:
            env[env_name] = _placeholder(env_name)
    # templates that read only env, secrets and the plan's own vars are tried
    # now (with the placeholders above, for validate): a runaway one is exit 2
    templates.check_budgets({
        "env": env,
        "secrets": {name: value for name, (value, _) in secrets.items()},
        "vars": {name: value.value for name, value in plan_vars
                 if isinstance(value, Static) and name not in flow_parser.defined_vars},
    })
    running_flows = [flows[scenario.exec] for scenario in selected]
    running_flows += [flow for flow in (setup, teardown) if flow is not None]
    warnings += fault_warnings(chaos, selected, executor_length)
    warnings += threshold_warnings(thresholds, metrics, running_flows, chaos)

    return Plan(
        name=name,
        file=str(plan_path),
        file_sha256=budget.inputs.sha256(str(plan_path)),
        inputs_sha256=budget.inputs.digest(str(plan_path)),
        target=plan_target,
        allowed_hosts=hosts,
        headers=headers,
        timeout=timeout,
        vars=plan_vars,
        secrets=MappingProxyType({name: value for name, (value, _) in secrets.items()}),
        env=MappingProxyType(env),
        metrics=MappingProxyType(metrics),
        data=MappingProxyType(data),
        flows=MappingProxyType(flows),
        scenarios=tuple(selected),
        thresholds=tuple(thresholds),
        limits=limits,
        setup=setup,
        teardown=teardown,
        profile=chosen.name if chosen else None,
        max_body_bytes=max_body,
        http_client=defaults.http_client,
        insecure_skip_tls_verify=defaults.insecure_skip_tls_verify,
        chaos=chaos,
        warnings=tuple(warnings),
        regressions=tuple(regressions),
        realtime_writes=_realtime_writes(flow_parser.websocket.writes),
        probes=probes,
        execution=execution,
    )


def _probe_metrics(probes: Sequence[Probe]) -> dict[str, MetricDecl]:
    decls = {name: MetricDecl(name, "gauge", probe.source)
             for probe in probes for name in probe.metric_names}
    if probes:
        decls[PROBE_ERRORS] = MetricDecl(PROBE_ERRORS, "counter", probes[0].source)
    return decls


def _check_selection(names: Iterable[str], scenarios: Mapping[str, Entry]) -> None:
    for name in names:
        if name not in scenarios:
            raise PlanError(f"unknown scenario '{name}' (choices: {', '.join(scenarios)})",
                            hint=did_you_mean(name, scenarios))


def _start_at_once(selected: Sequence[Scenario], faults: Sequence[Fault]
                   ) -> tuple[list[Scenario], tuple[Fault, ...]]:
    """A --scenario subset does not idle until its plan start times: the
    earliest selected scenario starts at 0, the others keep their offsets
    from it, and faults timed from the run's start move with them."""
    shift = min(scenario.start_time for scenario in selected)
    if shift <= 0:
        return list(selected), tuple(faults)
    return ([replace(scenario, start_time=scenario.start_time - shift) for scenario in selected],
            shift_faults(faults, shift))


def _applies(threshold: Threshold | RegressionBudget, running: Collection[str],
             phases: Collection[str]) -> bool:
    """A budget on a scenario that does not run, or on the phase of a fault
    that does not (dropped with its scenario, or over before a --scenario
    subset starts), could only end as `no data`."""
    tags = dict(threshold.tags)
    scenario, phase = tags.get("scenario"), tags.get("phase")
    return (scenario is None or scenario in running) and (phase is None or phase in phases)


def _target(root: Map, cli_target: str | None, templates: Templates, env: dict[str, str],
            placeholders: bool, warnings: list[PlanWarning]) -> tuple[str, str | None]:
    """The target URL, and the environment variable it lacks (then the URL
    is the placeholder; only with `placeholders`)."""
    try:
        return resolve_target(root, cli_target, templates, env), None
    except UnsetTarget as exc:
        if not placeholders:
            raise
        warnings.append(PlanWarning(
            f"target: environment variable '{exc.name}' is not set; validated with the "
            f"placeholder target {PLACEHOLDER_TARGET}", exc.source, unset=exc.name))
        env[exc.name] = PLACEHOLDER_TARGET
        return PLACEHOLDER_TARGET, exc.name


def _secrets(nodes: Iterable[Node], env: Mapping[str, str], placeholders: bool,
             warnings: list[PlanWarning]) -> tuple[dict[str, tuple[str, Source]], set[str]]:
    """Secret name -> (value, where it was declared), and every declared name.

    A plain name must be set (with `placeholders`, an unset one gets a
    placeholder value and a warning). `{name: X, optional: true}` may be
    unset: it is then left out of `secrets`, so `secrets.get('X')` is falsy
    (a probe or step can be switched off by it), and nothing warns."""
    secrets = {}
    declared = set()
    for node in nodes:
        name, optional = _secret_declaration(node)
        declared.add(name)
        if name not in env and optional:
            continue
        if name not in env:
            if not placeholders:
                raise PlanError(f"secret '{name}' is not set in the environment", node.source,
                                f"export {name}")
            warnings.append(PlanWarning(f"secret '{name}' is not set in the environment; "
                                        "validated with a placeholder", node.source, unset=name))
            secrets[name] = (_placeholder(name), node.source)
            continue
        secrets[name] = (env[name], node.source)
    return secrets, declared


def _secret_declaration(node: Node) -> tuple[str, bool]:
    """(name, optional) of one `secrets:` item: `NAME` or `{name: NAME, optional: bool}`."""
    if not isinstance(node, Map):
        return expect_str(node, "secrets"), False
    check_keys(node, {"name", "optional"}, "in a secrets item")
    name_node = required(node, "name", "in a secrets item")
    optional_node = node.get("optional")
    optional = optional_node is not None and expect_bool(optional_node, "secrets item optional")
    return expect_str(name_node, "secrets name"), optional


def _placeholder(name: str) -> str:
    return f"placeholder-{name}"


def _template_strings(document: PlanDocument) -> Iterator[str]:
    """Every template text in the plan and its includes."""
    yield from template_strings(entry.value for entry in document.root.entries.values())
    for section in document.named.values():
        yield from template_strings(entry.value for entry in section.values())
    yield from template_strings(entry.value for _, entry in document.thresholds)


class AnyHost(tuple):  # type: ignore[type-arg]
    """The allowed hosts when the target is a placeholder: the real target's
    host is unknown, so literal URLs are not checked against it."""

    __slots__ = ()

    def __contains__(self, host: object) -> bool:
        return True


def _vars(entries: Mapping[str, Entry], cli: Mapping[str, str],
          templates: Templates) -> tuple[tuple[str, Renderable], ...]:
    """Plan vars in order, --var values replacing them (or added at the end)."""
    compiled: dict[str, Renderable] = {}
    for name, entry in entries.items():
        compiled[name] = Static(cli[name]) if name in cli else templates.compile_node(entry.value)
    for name, value in cli.items():
        compiled.setdefault(name, Static(value))
    return tuple(compiled.items())


class _Defaults(NamedTuple):
    headers: tuple[tuple[str, Renderable], ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    max_body: int = DEFAULT_MAX_BODY
    http_client: str | None = None
    insecure_skip_tls_verify: bool = False


def _defaults(node: Node | None, templates: Templates) -> _Defaults:
    """Plan-wide request headers, timeout, maximum body size and the HTTP
    client's settings (k6's insecureSkipTLSVerify)."""
    if node is None:
        return _Defaults()
    defaults = expect_map(node, "defaults")
    check_keys(defaults, ("headers", "timeout", "maxBodySize", "httpClient",
                          "insecureSkipTLSVerify"), "in defaults")
    timeout_node, size = defaults.get("timeout"), defaults.get("maxBodySize")
    timeout = DEFAULT_TIMEOUT
    if timeout_node is not None:
        timeout = expect_duration(timeout_node, "timeout", positive=True)
    max_body = DEFAULT_MAX_BODY
    if size is not None:
        try:
            max_body = parse_size(size.value if isinstance(size, Scalar) else None)
        except ValueError as exc:
            raise PlanError(f"maxBodySize: {exc}", size.source) from None
        if max_body <= 0:
            raise PlanError("maxBodySize: must be greater than 0", size.source)
    client_node, insecure_node = defaults.get("httpClient"), defaults.get("insecureSkipTLSVerify")
    return _Defaults(
        parse_headers(defaults.get("headers"), templates), timeout, max_body,
        None if client_node is None else expect_choice(client_node, "httpClient", HTTP_CLIENTS),
        insecure_node is not None and expect_bool(insecure_node, "insecureSkipTLSVerify"))


def _realtime_writes(writes: Iterable[tuple[str, Source, JsonPath]]
                     ) -> dict[str, tuple[JsonPath, ...]]:
    """Every request some subscription's `updates` waits for, with the
    write_key paths read from its response (as the flows were parsed): a
    worker process relays the keys of all of them, also those no
    subscription of its own watches."""
    paths: dict[str, dict[str, JsonPath]] = {}
    for write, _, path in writes:
        paths.setdefault(write, {}).setdefault(path.text, path)
    return {write: tuple(by_text.values()) for write, by_text in paths.items()}


def _hook(root: Map, name: str, parser: FlowParser) -> Flow | None:
    node = root.get(name)
    return parser.parse_flow(name, node, root.key_source(name)) if node is not None else None


def _live_key_candidates(document: PlanDocument, cli_vars: Mapping[str, str],
                         secrets: Mapping[str, tuple[str, Source]], templates: Templates,
                         env: Mapping[str, str]) -> Iterator[tuple[str, str, Source | None]]:
    """Every value a live key could hide in: secrets, literal var values,
    --var values, and environment variables templates name literally."""
    for name, (value, source) in secrets.items():
        yield f"secret '{name}'", value, source
    for name, value in cli_vars.items():
        yield f"--var {name}", value, None
    for name, entry in document.named["vars"].items():
        if name not in cli_vars:
            for text, source in _literal_strings(entry.value):
                yield f"var '{name}'", text, source
    for ref in templates.references:
        if ref.root == "env" and ref.name in env:
            yield f"environment variable '{ref.name}'", env[ref.name], ref.source


def _literal_strings(node: Node) -> Iterator[tuple[str, Source]]:
    if isinstance(node, Map):
        for entry in node.entries.values():
            yield from _literal_strings(entry.value)
    elif isinstance(node, Seq):
        for item in node.items:
            yield from _literal_strings(item)
    elif isinstance(node.value, str) and not is_template(node.value):
        yield node.value, node.source

