"""Plan values compiled once into renderables the engine calls per request.

Jinja parsing costs far more than rendering, and most plan values are not
templates at all, so everything is sorted out at load time: constants render
as themselves, a lone `{{ expr }}` keeps its native type, and containers only
re-render the parts that can change. Load time also records every context
name a template reads, so undefined names fail before anything is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from loadaction.errors import PlanError, Source
from loadaction.plan.model import Renderable
from loadaction.plan.source import Map, Node, Seq

ROOTS = ("env", "secrets", "vars", "vu", "iter", "scenario", "data", "response")
"""Names a template may read from the render context."""

_ATTRIBUTE_ROOTS = frozenset({"env", "secrets", "vars", "data"})


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

    __slots__ = ("text", "source", "_template", "_globals")

    def __init__(self, text: str, source: Source, template: Template):
        self.text = text
        self.source = source
        self._template = template
        self._globals = dict(template.globals)

    def _context(self, ctx: Mapping[str, Any]) -> Context:
        return self._template.new_context({**self._globals, **ctx}, shared=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class TextTemplate(_JinjaTemplate):
    """A template with surrounding text: always renders to str."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        return "".join(self._template.root_render_func(self._context(ctx)))


class ExpressionTemplate(_JinjaTemplate):
    """Exactly one `{{ expr }}`, compiled as `{% set result = expr %}` (what
    Environment.compile_expression builds) so the value keeps its type."""

    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        context = self._context(ctx)
        for _ in self._template.root_render_func(context):
            pass  # a lone `set` outputs nothing; it runs for its side effect
        value = context.vars["result"]
        if isinstance(value, Undefined):
            # A bare expression hands back the Undefined instead of failing;
            # StrictUndefined raises on str(), which names what was missing.
            str(value)
        return value


class MappingTemplate:
    """A dict with some templated values; constant entries are copied, not rendered."""

    __slots__ = ("_base", "_dynamic")

    def __init__(self, parts: Mapping[str, Renderable]):
        # Dynamic keys keep their place: assigning to an existing key does not reorder.
        self._base = {key: part.value if isinstance(part, Static) else None
                      for key, part in parts.items()}
        self._dynamic = tuple((key, part) for key, part in parts.items()
                              if not isinstance(part, Static))

    def render(self, ctx: Mapping[str, Any]) -> Any:
        out = self._base.copy()
        for key, part in self._dynamic:
            out[key] = part.render(ctx)
        return out


class SequenceTemplate:
    """A list with some templated items."""

    __slots__ = ("_base", "_dynamic")

    def __init__(self, parts: Sequence[Renderable]):
        self._base = [part.value if isinstance(part, Static) else None for part in parts]
        self._dynamic = tuple((index, part) for index, part in enumerate(parts)
                              if not isinstance(part, Static))

    def render(self, ctx: Mapping[str, Any]) -> Any:
        out = self._base.copy()
        for index, part in self._dynamic:
            out[index] = part.render(ctx)
        return out


def combine_mapping(parts: Mapping[str, Renderable]) -> Renderable:
    """One renderable for a dict of parts; Static when nothing in it varies."""
    constants = {key: part.value for key, part in parts.items() if isinstance(part, Static)}
    return Static(constants) if len(constants) == len(parts) else MappingTemplate(parts)


def combine_sequence(parts: Sequence[Renderable]) -> Renderable:
    """One renderable for a list of parts; Static when nothing in it varies."""
    constants = [part.value for part in parts if isinstance(part, Static)]
    return Static(constants) if len(constants) == len(parts) else SequenceTemplate(parts)


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
    """One sandboxed Jinja environment per plan load, and the references its
    templates make (checked once every name a plan defines is known)."""

    def __init__(self) -> None:
        self.environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self.environment.globals.update(
            uuid=_uuid, now=time.time, random_int=random.randint,
            stripe_signature=stripe_signature,
        )
        self.references: list[Reference] = []

    def compile_value(self, obj: Any, source: Source) -> Renderable:
        """Strings anywhere inside dicts and lists become templates."""
        if isinstance(obj, str):
            return self.compile_string(obj, source)
        if isinstance(obj, Mapping):
            return combine_mapping({str(key): self.compile_value(value, source)
                                    for key, value in obj.items()})
        if isinstance(obj, (list, tuple)):
            return combine_sequence([self.compile_value(item, source) for item in obj])
        return Static(obj)

    def compile_node(self, node: Node) -> Renderable:
        """Like compile_value, but each part keeps its own line for errors."""
        if isinstance(node, Map):
            return combine_mapping({key: self.compile_node(entry.value)
                                    for key, entry in node.items()})
        if isinstance(node, Seq):
            return combine_sequence([self.compile_node(item) for item in node.items])
        return self.compile_value(node.value, node.source)

    def compile_string(self, text: str, source: Source) -> Renderable:
        if not is_template(text):
            return Static(text)
        environment = self.environment
        try:
            ast = environment.parse(text)
            self._record_references(ast, source)
            expression = _single_expression(ast)
            if expression is None:
                return TextTemplate(text, source, environment.from_string(ast))
            assign = nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)
            return ExpressionTemplate(text, source,
                                      environment.from_string(nodes.Template([assign], lineno=1)))
        except TemplateSyntaxError as exc:
            raise PlanError(f"template syntax error: {exc.message}", source) from None

    def _record_references(self, ast: nodes.Template, source: Source) -> None:
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
                    and target.name in _ATTRIBUTE_ROOTS and key is not None):
                self.references.append(Reference(target.name, key, source))


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
