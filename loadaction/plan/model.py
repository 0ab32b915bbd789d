"""The validated, immutable plan the engine runs.

Everything here is produced by `loadaction.plan.load_plan` after validation,
so the engine never re-checks user input. Durations are seconds (floats);
every user-written element keeps its `Source` so errors and GitHub
annotations can point at the plan line it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from loadaction.errors import Source
from loadaction.metrics.regressions import RegressionExpr
from loadaction.metrics.thresholds import ThresholdExpr, format_selector
from loadaction.plan.segments import FULL_TUPLE, Execution

if TYPE_CHECKING:
    from loadaction.plan.probes import Probe


class Renderable(Protocol):
    """A value compiled at load time; rendering never parses again."""

    def render(self, ctx: Mapping[str, Any]) -> Any: ...


class JsonPath(Protocol):
    """A compiled JSON path (`$.data[0].id`)."""

    text: str

    def first(self, doc: Any) -> tuple[bool, Any]:
        """(found, value) of the first match."""
        ...


# ---------------------------------------------------------------- requests

HTTP_CLIENTS = ("fast", "aiohttp")  # the transports a plan or --http-client may name

@dataclass(frozen=True, slots=True)
class RequestSpec:
    method: str
    url: Renderable  # absolute, or relative to the plan target
    name: str  # the `name` tag; defaults to the URL template's source text
    source: Source
    query: Renderable | None = None  # renders to a mapping
    headers: tuple[tuple[str, Renderable], ...] = ()  # merged over plan defaults
    json: Renderable | None = None
    form: Renderable | None = None  # renders to a mapping
    body: Renderable | None = None  # renders to str or bytes
    timeout: float | None = None  # seconds; None: the plan default
    expect: tuple[int, ...] | None = None  # expected statuses; None: 200-399
    tags: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- flow steps

Subject = Literal["status", "header", "json", "body"]
MatcherKind = Literal["equals", "in", "exists", "contains", "matches"]


@dataclass(frozen=True, slots=True)
class Matcher:
    kind: MatcherKind
    operand: Any  # for `matches`, a compiled re.Pattern


@dataclass(frozen=True, slots=True)
class Condition:
    """One check: `name` is what the summary shows and the `check` tag."""

    name: str
    subject: Subject
    key: str | JsonPath | None  # header name, compiled JSON path, or None
    matcher: Matcher
    source: Source


@dataclass(frozen=True, slots=True)
class RequestStep:
    request: RequestSpec


@dataclass(frozen=True, slots=True)
class BatchStep:
    requests: tuple[RequestSpec, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class CheckStep:
    conditions: tuple[Condition, ...]
    response: str | None  # a request name; None: the last response
    source: Source


@dataclass(frozen=True, slots=True)
class Extraction:
    var: str
    subject: Subject
    key: str | JsonPath | None


@dataclass(frozen=True, slots=True)
class ExtractStep:
    items: tuple[Extraction, ...]
    response: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class RecordStep:
    """Add `value` to a custom metric when `when` holds (both templates over
    the context, which includes `response`)."""

    metric: str
    value: Renderable | None  # None: 1 for counters, True for rates
    when: Renderable | None
    source: Source


@dataclass(frozen=True, slots=True)
class MapRecordStep:
    """Count a response field into metrics: `result: valid -> successful_scans`."""

    subject: Subject
    key: str | JsonPath | None
    mapping: tuple[tuple[str, str], ...]  # (field value as text, counter metric)
    response: str | None
    source: Source


@dataclass(frozen=True, slots=True)
class ThinkStep:
    min_s: float
    max_s: float  # == min_s for a fixed pause
    source: Source


@dataclass(frozen=True, slots=True)
class SetStep:
    assignments: tuple[tuple[str, Renderable], ...]
    source: Source


@dataclass(frozen=True, slots=True)
class GroupStep:
    name: str
    steps: tuple[Step, ...]
    source: Source


@dataclass(frozen=True, slots=True)
class IfStep:
    """Steps that run only when `when` renders truthy (e.g. seed test data
    unless the environment names existing data); `otherwise` runs instead."""

    when: Renderable
    steps: tuple[Step, ...]
    otherwise: tuple[Step, ...]
    source: Source


# ---------------------------------------------------------------- WebSocket steps

WsMessageKind = Literal["text", "json", "binary"]
SessionKeep = Literal["iteration", "vu"]


@dataclass(frozen=True, slots=True)
class WsMessage:
    """A message a session sends, rendered at each send (with a fresh `ws.ref`).
    `binary` renders to base64 text, decoded when sent."""

    kind: WsMessageKind
    value: Renderable
    source: Source


@dataclass(frozen=True, slots=True)
class WsHeartbeat:
    """An application-level heartbeat sent in the background while the session
    is open; its reply is the first message whose value at `reply` equals the
    sent message's (None: replies are not awaited)."""

    every: float
    message: WsMessage
    reply: JsonPath | None
    timeout: float
    source: Source


@dataclass(frozen=True, slots=True)
class WebSocketStep:
    """Open the session `name` (a no-op while it is open): the handshake, then
    `on_open` after every (re)connect. `keep: vu` keeps it across iterations."""

    name: str
    url: Renderable  # ws(s)://, http(s):// (mapped to ws(s)://) or relative to the target
    source: Source
    query: Renderable | None = None  # renders to a mapping
    headers: tuple[tuple[str, Renderable], ...] = ()  # merged over plan defaults
    subprotocols: tuple[str, ...] = ()
    timeout: float | None = None  # the handshake's; None: the plan default
    keep: SessionKeep = "iteration"
    ping: float | None = None  # seconds between ping frames; None: no pings
    heartbeat: WsHeartbeat | None = None
    on_open: tuple[Step, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class WsSendStep:
    session: str
    message: WsMessage
    source: Source


@dataclass(frozen=True, slots=True)
class WsReceiveStep:
    """Wait for the first message matching `until` (every condition; none:
    any message); `name` makes it a `response:` for later steps."""

    session: str
    name: str | None
    until: tuple[Condition, ...]
    timeout: float | None  # None: the plan default
    source: Source


@dataclass(frozen=True, slots=True)
class UpdatesSpec:
    """What a subscription's messages are the updates of. Either `write` (a
    request name) with `write_key` (into its response) and `key` (into the
    message): latency from the write's response to the matching message, and
    misses past `deadline`; or `timestamp` (into the message): latency from
    the message's own server time, for writers outside the run."""

    source: Source
    write: str | None = None
    write_key: JsonPath | None = None
    key: JsonPath | None = None
    timestamp: JsonPath | None = None
    deadline: float = 5.0


@dataclass(frozen=True, slots=True)
class WsSubscribeStep:
    """In the background, for every later message of the session matching
    `where`: run `steps` (check, extract, record, set) and match `updates`."""

    session: str
    name: str
    where: tuple[Condition, ...]
    steps: tuple[Step, ...]
    source: Source
    updates: UpdatesSpec | None = None


@dataclass(frozen=True, slots=True)
class WsCloseStep:
    session: str
    code: int
    reason: str
    source: Source


Step = (
    RequestStep | BatchStep | CheckStep | ExtractStep | RecordStep | MapRecordStep
    | ThinkStep | SetStep | GroupStep | IfStep
    | WebSocketStep | WsSendStep | WsReceiveStep | WsSubscribeStep | WsCloseStep
)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    source: Source
    sessions: tuple[str, ...] = ()  # the WebSocket sessions its steps open


# ---------------------------------------------------------------- executors

@dataclass(frozen=True, slots=True)
class Stage:
    duration: float
    target: float


@dataclass(frozen=True, slots=True)
class ConstantVUs:
    duration: float
    vus: int = 1
    kind: Literal["constant-vus"] = "constant-vus"


@dataclass(frozen=True, slots=True)
class RampingVUs:
    stages: tuple[Stage, ...]
    start_vus: int = 1
    graceful_ramp_down: float = 30.0
    kind: Literal["ramping-vus"] = "ramping-vus"


@dataclass(frozen=True, slots=True)
class PerVUIterations:
    vus: int = 1
    iterations: int = 1
    max_duration: float = 600.0
    kind: Literal["per-vu-iterations"] = "per-vu-iterations"


@dataclass(frozen=True, slots=True)
class SharedIterations:
    vus: int = 1
    iterations: int = 1
    max_duration: float = 600.0
    kind: Literal["shared-iterations"] = "shared-iterations"


@dataclass(frozen=True, slots=True)
class ConstantArrivalRate:
    rate: float
    duration: float
    pre_allocated_vus: int
    max_vus: int  # defaults to pre_allocated_vus
    time_unit: float = 1.0
    kind: Literal["constant-arrival-rate"] = "constant-arrival-rate"


@dataclass(frozen=True, slots=True)
class RampingArrivalRate:
    stages: tuple[Stage, ...]
    pre_allocated_vus: int
    max_vus: int
    start_rate: float = 0.0
    time_unit: float = 1.0
    kind: Literal["ramping-arrival-rate"] = "ramping-arrival-rate"


ExecutorSpec = (
    ConstantVUs | RampingVUs | PerVUIterations | SharedIterations
    | ConstantArrivalRate | RampingArrivalRate
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    executor: ExecutorSpec
    exec: str  # flow name
    source: Source
    start_time: float = 0.0
    graceful_stop: float = 30.0
    tags: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------- metrics & data

MetricKind = Literal["counter", "rate", "trend", "gauge"]


@dataclass(frozen=True, slots=True)
class MetricDecl:
    name: str
    kind: MetricKind
    source: Source
    is_time: bool = False  # trends of milliseconds, shown as durations


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str  # bare metric name
    tags: tuple[tuple[str, str], ...]  # sub-metric selector, sorted
    expr: ThresholdExpr
    source: Source
    abort_on_fail: bool = False
    delay_abort_eval: float = 0.0
    optional: bool = False
    # samples the verdict needs; None: what the aggregate needs (a p(95) needs
    # 20, or its 95th percentile is just the maximum), else 1
    min_samples: int | None = None

    @property
    def selector(self) -> str:
        """The metric as written in k6 syntax: `http_req_duration{scenario:a}`."""
        return format_selector(self.metric, self.tags)


@dataclass(frozen=True, slots=True)
class RegressionBudget:
    """How much worse than the baseline runs a metric may get (`regressions:`)."""

    metric: str
    tags: tuple[tuple[str, str], ...]
    expr: RegressionExpr
    source: Source
    required: bool = False  # `insufficient data` fails the gate too

    @property
    def selector(self) -> str:
        return format_selector(self.metric, self.tags)


DataMode = Literal["unique", "sequential", "random"]


@dataclass(frozen=True, slots=True)
class DataSource:
    name: str
    rows: tuple[Mapping[str, Any], ...]
    mode: DataMode
    source: Source


# ---------------------------------------------------------------- chaos

@dataclass(frozen=True, slots=True)
class HttpCall:
    """One call of the `http` fault adapter (to start or to stop a fault)."""

    method: str
    url: Renderable
    source: Source
    headers: tuple[tuple[str, Renderable], ...] = ()
    json: Renderable | None = None
    body: Renderable | None = None
    expect: tuple[int, ...] | None = None  # None: any 2xx
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class HttpFault:
    start: HttpCall
    stop: HttpCall
    kind: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class CommandFault:
    start: Renderable  # a shell command line, run with /bin/sh -c
    stop: Renderable
    timeout: float = 30.0
    kind: Literal["command"] = "command"


@dataclass(frozen=True, slots=True)
class ToxiproxyFault:
    api: Renderable  # Toxiproxy's REST API base URL, e.g. http://127.0.0.1:8474
    proxy: str
    toxic_type: str  # latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data
    attributes: Renderable  # renders to a mapping
    stream: Literal["upstream", "downstream"] = "downstream"
    toxicity: float = 1.0
    kind: Literal["toxiproxy"] = "toxiproxy"


@dataclass(frozen=True, slots=True)
class ChaosToolkitFault:
    """Chaos Toolkit activities in its own format (`type`, `name`, `provider`)."""

    action: Mapping[str, Any]
    rollback: Mapping[str, Any]
    configuration: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["chaostoolkit"] = "chaostoolkit"


@dataclass(frozen=True, slots=True)
class AbortFault:
    """Close the connection once the request is sent, before reading the response."""

    requests: tuple[str, ...]  # request names the fault applies to
    probability: float = 1.0
    kind: Literal["abort"] = "abort"


@dataclass(frozen=True, slots=True)
class DuplicateFault:
    """Deliver the same request again: at once (`delay` None) or after `delay` seconds."""

    requests: tuple[str, ...]
    probability: float = 1.0
    copies: int = 1
    delay: float | None = None
    kind: Literal["duplicate"] = "duplicate"


@dataclass(frozen=True, slots=True)
class ReorderFault:
    """Hold up to `window` matching requests and deliver them shuffled."""

    requests: tuple[str, ...]
    window: int = 5
    max_wait: float = 1.0  # a partly filled window is flushed after this long
    kind: Literal["reorder"] = "reorder"


TamperMode = Literal["body", "signature", "stale", "missing-header", "rotation"]


@dataclass(frozen=True, slots=True)
class TamperFault:
    """Corrupt a signed request; `expect` is the answer a correct system gives
    (400 for every mode but `rotation`, where a second, valid v1 must pass: 200)."""

    requests: tuple[str, ...]
    mode: TamperMode
    expect: tuple[int, ...]
    header: str = "Stripe-Signature"
    secret: Renderable | None = None  # needed by `stale` and `rotation` to sign anew
    probability: float = 1.0
    kind: Literal["tamper"] = "tamper"


RetryMode = Literal["retry", "different-body", "concurrent"]


@dataclass(frozen=True, slots=True)
class TimeoutRetryFault:
    """Give up after a short client `timeout` and retry with the same idempotency
    key (`retry`); or reuse the key with another body (`different-body`), or
    send the same key twice at once (`concurrent`)."""

    requests: tuple[str, ...]
    mode: RetryMode = "retry"
    timeout: float = 0.05
    retries: int = 1
    header: str = "Idempotency-Key"
    kind: Literal["timeout-retry"] = "timeout-retry"


FaultAction = (
    HttpFault | CommandFault | ToxiproxyFault | ChaosToolkitFault
    | AbortFault | DuplicateFault | ReorderFault | TamperFault | TimeoutRetryFault
)
CLIENT_FAULT_KINDS = frozenset({"abort", "duplicate", "reorder", "tamper", "timeout-retry"})


@dataclass(frozen=True, slots=True)
class RecoveryBudget:
    """How fast the system must be back once the fault ends: `expr` holds for
    `stable` seconds in a row, starting within `within` seconds of the end.
    Judged from the per-second series: `http_req_duration` with avg/med/max/p(N),
    or `http_req_failed` with rate, optionally `{scenario:name}`."""

    metric: str
    tags: tuple[tuple[str, str], ...]
    expr: ThresholdExpr
    within: float
    source: Source
    stable: float = 3.0

    @property
    def selector(self) -> str:
        return format_selector(self.metric, self.tags)


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    action: FaultAction
    at: float  # seconds after `anchor` started (the run's start when anchor is None)
    duration: float
    source: Source
    anchor: str | None = None  # a scenario name
    recovery: tuple[RecoveryBudget, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Safety caps; None means uncapped."""

    max_rps: float | None = None
    max_requests: int | None = None
    max_duration: float | None = None
    allow_live_keys: bool = False


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """A plan mistake that still validates (a fault that never starts, a budget
    on a metric nothing records), or an environment variable or secret that
    is not set (`unset` is its name: `validate --strict` makes these errors)."""

    message: str
    source: Source | None
    unset: str | None = None

    def __str__(self) -> str:
        return f"{self.source}: {self.message}" if self.source else self.message


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    file: str
    target: str  # base URL, scheme://host[:port][/path]
    allowed_hosts: tuple[str, ...]  # host or host:port; always includes the target's
    headers: tuple[tuple[str, Renderable], ...]
    timeout: float
    vars: tuple[tuple[str, Renderable], ...]  # rendered once before setup
    secrets: Mapping[str, str]  # name -> value, masked everywhere
    env: Mapping[str, str]
    metrics: Mapping[str, MetricDecl]  # custom metrics only
    data: Mapping[str, DataSource]
    flows: Mapping[str, Flow]
    scenarios: tuple[Scenario, ...]
    thresholds: tuple[Threshold, ...]
    limits: Limits = field(default_factory=Limits)
    setup: Flow | None = None
    teardown: Flow | None = None
    profile: str | None = None
    max_body_bytes: int = 1 << 20  # response bodies are read up to this size
    http_client: str | None = None  # defaults.httpClient; None: the engine's default
    insecure_skip_tls_verify: bool = False  # defaults.insecureSkipTLSVerify
    chaos: tuple[Fault, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()  # printed before anything is sent
    regressions: tuple[RegressionBudget, ...] = ()
    # request names whose responses some subscription's `updates` waits for,
    # each with the write_key paths read from them (relayed across --workers)
    realtime_writes: Mapping[str, tuple[JsonPath, ...]] = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()  # sampled while the load runs (plan/probes.py)
    # the share of the plan this process runs (--execution-segment, --shard):
    # the scenarios above are the whole plan's, executors take their share
    execution: Execution = FULL_TUPLE
    # SHA-256 of the plan file's bytes as loaded, and over every file the plan
    # was loaded from (plan/inputs.py): the plan file, its extends bases,
    # includes and data files; None in memory
    file_sha256: str | None = None
    inputs_sha256: str | None = None
