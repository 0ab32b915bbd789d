"""Plan values compiled once into renderables the engine calls per request.

Jinja parsing costs far more than rendering, and most plan values are not
templates at all, so everything is sorted out at load time: constants render
as themselves, a lone `{{ expr }}` keeps its native type, and containers only
re-render the parts that can change. Load time also records every context
name a template reads, so undefined names fail before anything is sent.

Every render has a budget (see template_budget): templates that could loop,
call or repeat compile with guards, and a template that can be tried at load
time (it reads only `vu`, `iter`, `scenario`, or values the loader supplies)
is tried, so one that breaks its budget is a plan error.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from loadaction.errors import PlanError, Source
from loadaction.plan.model import Renderable
from loadaction.plan.source import Map, Node, Seq
from loadaction.plan.template_budget import (
    MAX_RENDER_BYTES, MAX_RENDER_SECONDS, Budget, BudgetedEnvironment, TemplateBudgetError,
    amount, check_value, instrument, is_container, needs_budget,
)

ROOTS = ("env", "secrets", "vars", "vu", "iter", "scenario", "data", "response")
"""Names a template may read from the render context."""

_ATTRIBUTE_ROOTS = frozenset({"env", "secrets", "vars", "data"})

SAMPLE_CONTEXT: Mapping[str, Any] = {"vu": 1, "iter": 0, "scenario": {"name": "", "iteration": 0}}
"""What a template is tried with at load time: the first iteration of VU 1."""

_TRIAL_ROOTS = frozenset({"env", "secrets", "vars", *SAMPLE_CONTEXT})
"""Roots whose values the loader knows before anything runs."""


class TemplateRenderError(TemplateRuntimeError):
    """A render failed with an exception that says nothing (`OverflowError()`):
    this one names the template and the exception instead."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A context name a template reads: `vars.event_id` is ("vars", "event_id");
    `name` is None for the bare root, or when the key is computed."""

    root: str
    name: str | None
    source: Source


class Static:
    """A constant: rendering returns the same object every time (callers
    must not mutate it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def render(self, ctx: Mapping[str, Any]) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"Static({self.value!r})"


class _JinjaTemplate:
    """Renders like Template.render, minus copying the environment's globals
    (a ChainMap) into a fresh dict on every call, which is over half the
    cost of rendering a small template."""

    __slots__ = ("_budget", "_globals", "_template", "source", "text")

    def __init__(self, text: str, source: Source, template: Template, budget: Budget):
        self.text = text
        self.source = source
        self._template = template
        self._globals = dict(template.globals)
        self._budget = budget

    def _context(self, ctx: Mapping[str, Any]) -> Context:
        return self._template.new_context({**self._globals, **ctx}, shared=True)

    def _failed(self, exc: BaseException) -> Exception:
        """The error to raise for `exc`: with the template's place and a
        reason, never an empty message."""
        if isinstance(exc, TemplateBudgetError):
            return exc.at(self.source)
        if isinstance(exc, MemoryError):
            return TemplateBudgetError("ran out of memory", self.source)
        if isinstance(exc, RecursionError):
            return TemplateBudgetError("calls nested too deeply", self.source)
        return TemplateRenderError(f"template at {self.source} failed: {type(exc).__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class TextTemplate(_JinjaTemplate):
    """A template with surrounding text: always renders to str. Work in
    proportion to its length: only the output length is checked."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        try:
            text = "".join(self._template.root_render_func(self._context(ctx)))
        except (TemplateBudgetError, MemoryError, RecursionError) as exc:
            raise self._failed(exc) from None
        except Exception as exc:
            if str(exc):
                raise
            raise self._failed(exc) from exc
        if len(text) > self._budget.max_bytes:
            raise TemplateBudgetError(f"output over {amount(self._budget.max_bytes)}",
                                      self.source)
        return text


class BudgetedTextTemplate(TextTemplate):
    """A text template that may loop, call or repeat: every loop iteration,
    call, filter and guarded operator checks the budget, and what it yields
    is counted as it streams (so a loop stops at the limit, not after)."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        budget = self._budget
        budget.deadline = perf_counter() + budget.max_seconds  # budget.start(), inline
        budget.output = budget.made = 0
        limit = budget.max_bytes
        parts: list[str] = []
        append = parts.append
        size = 0
        try:
            for part in self._template.root_render_func(self._context(ctx)):
                size += len(part)
                if size > limit:
                    raise TemplateBudgetError(f"output over {amount(limit)}")
                append(part)
            return "".join(parts)
        except (TemplateBudgetError, MemoryError, RecursionError) as exc:
            raise self._failed(exc) from None
        except Exception as exc:
            if str(exc):
                raise
            raise self._failed(exc) from exc


class ExpressionTemplate(_JinjaTemplate):
    """Exactly one `{{ expr }}`, compiled as `{% set result = expr %}` (what
    Environment.compile_expression builds) so the value keeps its type."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        context = self._context(ctx)
        try:
            for _ in self._template.root_render_func(context):
                pass  # a lone `set` outputs nothing; it runs for its side effect
        except (TemplateBudgetError, MemoryError, RecursionError) as exc:
            raise self._failed(exc) from None
        except Exception as exc:
            if str(exc):
                raise
            raise self._failed(exc) from exc
        value = context.vars["result"]
        if isinstance(value, Undefined):
            # A bare expression hands back the Undefined instead of failing;
            # StrictUndefined raises on str(), which names what was missing.
            str(value)
        if type(value) is str and len(value) > self._budget.max_bytes:
            raise TemplateBudgetError(f"a value of {len(value)} characters is over the "
                                      f"{amount(self._budget.max_bytes)} limit", self.source)
        return value


class BudgetedExpressionTemplate(ExpressionTemplate):
    """A lone expression that may call, filter or repeat; its value is
    measured as it would be sent (a list's items, a dict's values)."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        budget = self._budget
        budget.deadline = perf_counter() + budget.max_seconds  # budget.start(), inline
        budget.output = budget.made = 0
        context = self._context(ctx)
        try:
            for _ in self._template.root_render_func(context):
                pass
            value = context.vars["result"]
            if type(value) is str:
                if len(value) <= budget.max_bytes:
                    return value
            elif isinstance(value, Undefined):
                str(value)
            return check_value(budget, value)
        except (TemplateBudgetError, MemoryError, RecursionError) as exc:
            raise self._failed(exc) from None
        except Exception as exc:
            if str(exc):
                raise
            raise self._failed(exc) from exc


def _may_hold_containers(part: Renderable) -> bool:
    return not isinstance(part, (Static, TextTemplate))


def _check_shared(budget: Budget, out: Any, values: Any) -> None:
    """Two or more rendered parts holding lists or dicts may hold the same
    one (a `set` of {a: "{{ vars.x }}", b: "{{ vars.x }}"} doubles what
    vars.x prints as, each iteration): then the whole is measured."""
    if sum(map(is_container, values)) >= 2:
        budget.check_tree(out)


def _located(exc: TemplateBudgetError, dynamic: Sequence[tuple[Any, Renderable]]
             ) -> TemplateBudgetError:
    for _, part in dynamic:
        source = getattr(part, "source", None)
        if source is not None:
            return exc.at(source)
    return exc


class MappingTemplate:
    """A dict with some templated values; constant entries are copied, not rendered."""

    __slots__ = ("_base", "_budget", "_dynamic")

    def __init__(self, parts: Mapping[str, Renderable], budget: Budget | None = None):
        # Dynamic keys keep their place: assigning to an existing key does not reorder.
        self._base = {key: part.value if isinstance(part, Static) else None
                      for key, part in parts.items()}
        self._dynamic = tuple((key, part) for key, part in parts.items()
                              if not isinstance(part, Static))
        shared = sum(map(_may_hold_containers, parts.values())) >= 2
        self._budget = budget if shared else None

    def render(self, ctx: Mapping[str, Any]) -> Any:
        out = self._base.copy()
        for key, part in self._dynamic:
            out[key] = part.render(ctx)
        if self._budget is not None:
            try:
                _check_shared(self._budget, out, [out[key] for key, _ in self._dynamic])
            except TemplateBudgetError as exc:
                raise _located(exc, self._dynamic) from None
        return out


class SequenceTemplate:
    """A list with some templated items."""

    __slots__ = ("_base", "_budget", "_dynamic")

    def __init__(self, parts: Sequence[Renderable], budget: Budget | None = None):
        self._base = [part.value if isinstance(part, Static) else None for part in parts]
        self._dynamic = tuple((index, part) for index, part in enumerate(parts)
                              if not isinstance(part, Static))
        shared = sum(map(_may_hold_containers, parts)) >= 2
        self._budget = budget if shared else None

    def render(self, ctx: Mapping[str, Any]) -> Any:
        out = self._base.copy()
        for index, part in self._dynamic:
            out[index] = part.render(ctx)
        if self._budget is not None:
            try:
                _check_shared(self._budget, out, [out[index] for index, _ in self._dynamic])
            except TemplateBudgetError as exc:
                raise _located(exc, self._dynamic) from None
        return out


def combine_mapping(parts: Mapping[str, Renderable], budget: Budget | None = None) -> Renderable:
    """One renderable for a dict of parts; Static when nothing in it varies."""
    constants = {key: part.value for key, part in parts.items() if isinstance(part, Static)}
    if len(constants) == len(parts):
        return Static(constants)
    return MappingTemplate(parts, budget)


def combine_sequence(parts: Sequence[Renderable], budget: Budget | None = None) -> Renderable:
    """One renderable for a list of parts; Static when nothing in it varies."""
    constants = [part.value for part in parts if isinstance(part, Static)]
    if len(constants) == len(parts):
        return Static(constants)
    return SequenceTemplate(parts, budget)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def stripe_signature(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header value, so webhook tests can sign payloads."""
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256)
    return f"t={stamp},v1={digest.hexdigest()}"


def _uuid() -> str:
    return str(uuid.uuid4())


class Templates:
    """One sandboxed Jinja environment per plan load (two: a plain one for
    templates whose work is bounded by their length, a budgeted one for the
    rest), and the references its templates make (checked once every name a
    plan defines is known)."""

    def __init__(self, *, max_bytes: int = MAX_RENDER_BYTES,
                 max_seconds: float = MAX_RENDER_SECONDS) -> None:
        self.budget = Budget(max_bytes, max_seconds)
        self.environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.budgeted = BudgetedEnvironment(self.budget, undefined=StrictUndefined,
                                            autoescape=False)
        helpers = {"uuid": _uuid, "now": time.time, "random_int": random.randint,
                   "stripe_signature": stripe_signature}
        self.environment.globals.update(helpers)
        self.budgeted.globals.update(helpers)
        self.references: list[Reference] = []
        self._trials: list[tuple[_JinjaTemplate, frozenset[str]]] = []

    def compile_value(self, obj: Any, source: Source) -> Renderable:
        """Strings anywhere inside dicts and lists become templates."""
        if isinstance(obj, str):
            return self.compile_string(obj, source)
        if isinstance(obj, Mapping):
            return combine_mapping({str(key): self.compile_value(value, source)
                                    for key, value in obj.items()}, self.budget)
        if isinstance(obj, (list, tuple)):
            return combine_sequence([self.compile_value(item, source) for item in obj],
                                    self.budget)
        return Static(obj)

    def compile_node(self, node: Node) -> Renderable:
        """Like compile_value, but each part keeps its own line for errors."""
        if isinstance(node, Map):
            return combine_mapping({key: self.compile_node(entry.value)
                                    for key, entry in node.items()}, self.budget)
        if isinstance(node, Seq):
            return combine_sequence([self.compile_node(item) for item in node.items],
                                    self.budget)
        return self.compile_value(node.value, node.source)

    def compile_string(self, text: str, source: Source) -> Renderable:
        if not is_template(text):
            return Static(text)
        compiled: _JinjaTemplate
        # Compiling (and finding the names a template reads) folds constant
        # expressions, so the tree belongs to the budgeted environment until
        # it is known to be plain: `'x' | center(10**9)` must not run unguarded
        # even then, and no render is in progress to set a deadline.
        self.budget.idle()
        try:
            ast = self.budgeted.parse(text)
            roots = self._record_references(ast, source)
            expression = _single_expression(ast)
            budgeted = needs_budget(ast)
            environment = self.budgeted if budgeted else self.environment
            if not budgeted:
                ast.set_environment(environment)
            if expression is None:
                if budgeted:
                    ast = instrument(ast, self.budgeted)
                kind = BudgetedTextTemplate if budgeted else TextTemplate
                compiled = kind(text, source, environment.from_string(ast), self.budget)
            else:
                if budgeted:
                    expression = instrument(expression, self.budgeted)
                assign = nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)
                template = nodes.Template([assign], lineno=1)
                if budgeted:
                    template.set_environment(self.budgeted)
                kind = BudgetedExpressionTemplate if budgeted else ExpressionTemplate
                compiled = kind(text, source, environment.from_string(template), self.budget)
        except TemplateSyntaxError as exc:
            raise PlanError(f"template syntax error: {exc.message}", source) from None
        if roots <= SAMPLE_CONTEXT.keys():
            self._try(compiled, SAMPLE_CONTEXT)
        elif roots <= _TRIAL_ROOTS:
            self._trials.append((compiled, roots))
        return compiled

    def check_budgets(self, values: Mapping[str, Any]) -> None:
        """Try every template that reads only roots `values` has (e.g. env,
        secrets and the plan's own vars) with them: one that breaks its
        budget is a PlanError at its line. Other render errors are left to
        run time, as before."""
        for compiled, roots in self._trials:
            if roots <= values.keys() | SAMPLE_CONTEXT.keys():
                self._try(compiled, {**SAMPLE_CONTEXT, **values})

    def _try(self, compiled: _JinjaTemplate, ctx: Mapping[str, Any]) -> None:
        try:
            compiled.render(ctx)
        except TemplateBudgetError as exc:
            raise PlanError(f"template exceeded the render budget: {exc.reason}",
                            compiled.source) from None
        except Exception:  # noqa: BLE001 - anything else fails when rendered, as before
            pass
        finally:
            self.budget.idle()

    def _record_references(self, ast: nodes.Template, source: Source) -> frozenset[str]:
        """Record the context names `ast` reads; returns their roots."""
        undeclared = meta.find_undeclared_variables(ast) - self.environment.globals.keys()
        for name in sorted(undeclared):
            self.references.append(Reference(name, None, source))
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            key = _literal_key(node)
            if key is not None and key.startswith("_"):
                # The sandbox refuses these at render time too; refusing at
                # load time keeps a plan from ever reaching that point.
                raise PlanError(f"template uses unsafe attribute '{key}'", source)
            target = node.node
            if (isinstance(target, nodes.Name) and target.name in undeclared
                    and target.name in _ATTRIBUTE_ROOTS and key is not None
                    and not (target.name == "secrets" and key == "get")):
                self.references.append(Reference(target.name, key, source))
        # `secrets.get('NAME')` reads an optional secret: NAME must be declared
        for call in ast.find_all(nodes.Call):
            if (isinstance(call.node, nodes.Getattr) and call.node.attr == "get"
                    and isinstance(call.node.node, nodes.Name) and call.node.node.name == "secrets"
                    and "secrets" in undeclared):
                arg = call.args[0] if call.args else None
                name = arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None
                self.references.append(Reference("secrets", name, source))
        return frozenset(undeclared)


def _literal_key(node: nodes.Getattr | nodes.Getitem) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None


def _single_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is exactly `{{ expr }}`, else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts = ast.body[0].nodes
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return parts[0]
