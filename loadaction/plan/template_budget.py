"""Render budgets: no template may run long or make something huge.

Jinja's sandbox stops unsafe attribute access, but not work: two nested
`range(99999)` loops, `'x' * 10**10` or `'%99999999999s' | format('x')` are
all legal, and each blocks the event loop (and every signal) while it tries
to allocate gigabytes. So every render gets a budget:

- time: MAX_RENDER_SECONDS of wall clock, checked in loops and at every
  call, filter and guarded operator, so no render blocks the event loop for
  much longer than that;
- size: MAX_RENDER_BYTES for what it produces (the rendered text, counted as
  it streams or goes into a macro's buffer; a lone expression's value; every
  value made along the way), checked *before* anything that could make a
  huge value in one step: `*`, `**`, `%`, `+`, str.format, padding, replace,
  join, indent, batch and so on are guarded by what they would produce, not
  only by their inputs; a list or dict is measured as it would print, shared
  references counted as often as they appear;
- what a render makes in all: MADE_FACTOR x MAX_RENDER_BYTES of strings and
  lists, so memory stays at a few MiB however the budget is approached;
- items: MAX_ITEMS in a list or tuple a template makes;
- numbers: MAX_INT_BITS for an integer a template makes.

Breaking one raises TemplateBudgetError, whose message names the template
and the reason.

Only templates that can do unbounded work pay for this: a template made of
names, attributes, comparisons, `~`, `if` and text (most request templates)
does work proportional to its length and compiles in a plain sandbox, its
output length checked once. The others compile in BudgetedEnvironment, with
their for-loops, outputs and `~` rewritten to pass through guards.

Rendering is synchronous and happens on one thread (the event loop), so one
Budget per plan holds the state of the render in progress.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Mapping
from functools import update_wrapper
from math import inf
from time import perf_counter
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.compiler import has_safe_repr
from jinja2.exceptions import SecurityError, TemplateRuntimeError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from loadaction.errors import Source

MAX_RENDER_BYTES = 1 << 20
"""Most characters (or bytes) one render may produce: its text, its value, and
any string made along the way."""

MAX_RENDER_SECONDS = 0.1
"""Most wall-clock time one render may take."""

MAX_ITEMS = 1 << 20
"""Most items in one list or tuple a template makes."""

MAX_INT_BITS = 1 << 16
"""Most bits in one integer a template makes (about 19,700 digits)."""

MADE_FACTOR = 16
"""One render may make at most this many times MAX_RENDER_BYTES of strings
and lists along the way (what calls, filters and operators hand back, each
within the limit on its own), so a loop storing many big-but-allowed values
stops at a few MiB of memory rather than at the deadline."""

SLOW_TEXT_BYTES = MAX_RENDER_BYTES // 8
"""Most text `wordwrap` and `urlize` take: they cost about 1 µs a character."""

_WRAP_WORK = 2_000_000_000
"""textwrap splits a long word in time (word length x text length / width)."""

_MAX_DEPTH = 200
"""Deepest nesting of lists and dicts a template may write out."""

_LOOP = "__loadaction_budget_loop"
_OUTPUT = "__loadaction_budget_output"
_TEXT = "__loadaction_budget_text"
_CONCAT = "__loadaction_budget_concat"

_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)
_CONTAINER_TYPES = frozenset({list, tuple, dict, set, frozenset, Namespace})


class TemplateBudgetError(TemplateRuntimeError):
    """A render broke its budget; `reason` says how, `source` where. A Jinja
    TemplateError, so code that handles template errors handles it too."""

    def __init__(self, reason: str, source: Source | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source

    def at(self, source: Source) -> TemplateBudgetError:
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        where = f"template at {self.source}" if self.source is not None else "template"
        return f"{where} exceeded the render budget: {self.reason}"


def amount(size: int) -> str:
    """1048576 -> '1 MiB', 131072 -> '128 KiB'."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _short(value: Any) -> str:
    text = str(value) if isinstance(value, int) and value.bit_length() < 64 else None
    if text is None:
        text = f"a {value.bit_length()}-bit number" if isinstance(value, int) else repr(value)
    return text if len(text) <= 24 else text[:20] + "..."


class Budget:
    """The limits of a plan's renders, and the state of the one in progress."""

    __slots__ = ("deadline", "made", "max_bytes", "max_made", "max_seconds", "output")

    def __init__(self, max_bytes: int = MAX_RENDER_BYTES,
                 max_seconds: float = MAX_RENDER_SECONDS) -> None:
        self.max_bytes = max_bytes
        self.max_made = max_bytes * MADE_FACTOR
        self.max_seconds = max_seconds
        self.deadline = inf  # no render in progress: compiling folds constants through guards
        self.output = 0
        self.made = 0

    def resize(self, max_bytes: int) -> None:
        """A new size limit (e.g. to follow the plan's maxBodySize)."""
        self.max_bytes = max_bytes
        self.max_made = max_bytes * MADE_FACTOR

    def start(self) -> None:
        """A render begins (the budgeted templates do this inline)."""
        self.deadline = perf_counter() + self.max_seconds
        self.output = 0
        self.made = 0

    def idle(self) -> None:
        """No render in progress: compiling folds constants through the
        guards, with no deadline and nothing made yet."""
        self.deadline = inf
        self.output = 0
        self.made = 0

    def over_time(self) -> TemplateBudgetError:
        return TemplateBudgetError(f"ran over {self.max_seconds * 1000:g} ms")

    def tick(self) -> None:
        if perf_counter() > self.deadline:
            raise self.over_time()

    def too_big(self, what: str, size: int | None = None) -> TemplateBudgetError:
        of = f" of {size} characters" if size is not None else ""
        return TemplateBudgetError(f"{what}{of} is over the {amount(self.max_bytes)} limit")

    def check_size(self, what: str, size: int) -> None:
        if size > self.max_bytes:
            raise self.too_big(what, size)

    def check_tree(self, value: Any, what: str = "a value that would print", indent: int = 0) -> int:
        """Raise if `value` written out (str, repr, JSON) would be over the limit;
        shared references count as often as they appear, as they would print."""
        return _tree_size(value, self, what, indent)

    def text(self, value: Any) -> str:
        """str(value), refusing first what would print too big."""
        if isinstance(value, str):
            return value
        if isinstance(value, _CONTAINERS):
            self.check_tree(value)
        return str(value)

    def result(self, value: Any) -> Any:
        """What a call, filter or operator made: refused when too big, or
        when the render has made too much altogether."""
        if isinstance(value, (str, bytes)):
            size = len(value)
            if size > self.max_bytes:
                raise self.too_big("a value", size)
        elif type(value) is list or type(value) is tuple:
            if len(value) > MAX_ITEMS:
                raise TemplateBudgetError(f"a list of {len(value)} items is over the "
                                          f"{MAX_ITEMS} item limit")
            size = 8 * len(value)
        else:
            return value
        self.made += size
        if self.made > self.max_made:
            raise TemplateBudgetError(f"made over {amount(self.max_made)} of strings and lists")
        return value


class _TooBig(Exception):
    pass


def _tree_size(value: Any, budget: Budget, what: str, indent: int) -> int:
    """About how many characters `value` prints as: each shared object is counted
    as often as it is reachable (so a list holding itself 2**40 times over is
    refused in 40 steps, not written out), stopping once over the limit."""
    cap = budget.max_bytes
    memo: dict[int, int] = {}
    total = 0

    def size(obj: Any, depth: int) -> int:
        if isinstance(obj, (str, bytes)):
            return len(obj) + 2
        if obj is None or isinstance(obj, (bool, float)):
            return 5
        if isinstance(obj, int):
            return obj.bit_length() // 3 + 2
        if not isinstance(obj, _CONTAINERS):
            return 16
        key = id(obj)
        known = memo.get(key)
        if known is not None:
            return known
        if depth > _MAX_DEPTH:
            raise TemplateBudgetError(f"a value nested over {_MAX_DEPTH} levels deep")
        memo[key] = 5  # a reference cycle prints as [...]
        if isinstance(obj, Namespace):
            obj = obj._Namespace__attrs
        step = 2 + indent * (depth + 1)
        n = 2
        if isinstance(obj, dict):
            for k, v in obj.items():
                n += size(k, depth + 1) + size(v, depth + 1) + step
                if n > cap:
                    raise _TooBig
        else:
            for item in obj:
                n += size(item, depth + 1) + step
                if n > cap:
                    raise _TooBig
        memo[key] = n
        return n

    try:
        total = size(value, 0)
    except _TooBig:
        total = cap + 1
    except RecursionError:
        raise TemplateBudgetError(f"a value nested over {_MAX_DEPTH} levels deep") from None
    if total > cap:
        raise TemplateBudgetError(f"{what} as over {amount(cap)}")
    return total


def _value_size(value: Any, budget: Budget) -> int:
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, _CONTAINERS):
        return budget.check_tree(value)
    return 24


# ---------------------------------------------------------------- formatting

_PERCENT_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_DIGITS = re.compile(r"\d+")


def _width(budget: Budget, digits: str, what: str = "format width") -> int:
    if len(digits) > 9 or int(digits) > budget.max_bytes:
        shown = digits if len(digits) <= 20 else digits[:20] + "..."
        raise TemplateBudgetError(f"{what} {shown} is over the {amount(budget.max_bytes)} limit")
    return int(digits)


def check_percent(budget: Budget, fmt: str | bytes, args: Any) -> None:
    """Refuse `fmt % args` when it would make over the limit: widths and
    precisions are checked before anything is allocated."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    if "%" not in text:
        return
    mapping = args if isinstance(args, Mapping) else None
    positional = args if isinstance(args, tuple) else (() if mapping is not None else (args,))
    biggest = max((_value_size(arg, budget) for arg in positional), default=0)
    star = 0
    total = len(text)
    for spec in _PERCENT_SPEC.finditer(text):  # one at a time: a format may hold 300,000
        key, width, precision, conversion = spec.groups()
        if conversion == "%":
            continue
        pad = 0
        for part in (width, precision):
            if part == "*":
                if not star:
                    star = max((abs(a) for a in positional if isinstance(a, int)), default=0) or 1
                if star > budget.max_bytes:
                    raise TemplateBudgetError(f"format width {_short(star)} is over the "
                                              f"{amount(budget.max_bytes)} limit")
                pad = max(pad, star)
            elif part:
                pad = max(pad, _width(budget, part))
        if mapping is not None:
            arg_size = _value_size(mapping.get(key), budget) if key else biggest
        else:
            arg_size = biggest
        total += pad + arg_size
        if total > budget.max_bytes:
            raise budget.too_big("formatted text")


def _check_format_spec(budget: Budget, spec: str) -> None:
    for digits in _DIGITS.findall(spec):
        _width(budget, digits)


class _FormatterBudget:
    """str.format fields, each checked before it is made, and their total."""

    _budget: Budget
    _total: int

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._total = 0
        return super().vformat(format_string, args, kwargs)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        budget = self._budget
        budget.tick()
        if format_spec:
            _check_format_spec(budget, format_spec)
        if isinstance(value, _CONTAINERS):
            budget.check_tree(value)
        text = super().format_field(value, format_spec)  # type: ignore[misc]
        self._total += len(text)
        if self._total > budget.max_bytes:
            raise budget.too_big("formatted text")
        return text


class _BudgetFormatter(_FormatterBudget, SandboxedFormatter):
    def __init__(self, env: SandboxedEnvironment, budget: Budget) -> None:
        super().__init__(env)
        self._budget = budget
        self._total = 0


class _BudgetEscapeFormatter(_FormatterBudget, SandboxedEscapeFormatter):
    def __init__(self, env: SandboxedEnvironment, budget: Budget, escape: Any) -> None:
        super().__init__(env, escape=escape)
        self._budget = budget
        self._total = 0


# ---------------------------------------------------------------- methods

def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str,
         default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _check_pad(budget: Budget, owner: Any, args: tuple[Any, ...],
               kwargs: Mapping[str, Any]) -> None:
    width = _arg(args, kwargs, 0, "width")
    if isinstance(width, int) and width > budget.max_bytes:
        raise budget.too_big("padding", width)


def _check_expandtabs(budget: Budget, owner: Any, args: tuple[Any, ...],
                      kwargs: Mapping[str, Any]) -> None:
    tabsize = _arg(args, kwargs, 0, "tabsize", 8)
    if isinstance(tabsize, int) and tabsize > 1:
        tab = "\t" if isinstance(owner, str) else b"\t"
        budget.check_size("expanding tabs", len(owner) + owner.count(tab) * tabsize)


def _replaced_size(owner: Any, old: Any, new: Any, count: Any) -> int | None:
    kind = str if isinstance(owner, str) else bytes
    if not (isinstance(old, kind) and isinstance(new, kind)):
        return None  # the call itself raises TypeError
    found = owner.count(old) if old else len(owner) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(owner) + found * (len(new) - len(old))


def _check_replace(budget: Budget, owner: Any, args: tuple[Any, ...],
                   kwargs: Mapping[str, Any]) -> None:
    if len(args) < 2:
        return
    size = _replaced_size(owner, args[0], args[1], _arg(args, kwargs, 2, "count", -1))
    if size is not None:
        budget.check_size("replacing", size)


def _joined_size(budget: Budget, separator: Any, items: list[Any]) -> int:
    return len(separator) * max(len(items) - 1, 0) + sum(
        [_value_size(item, budget) for item in items])


def _check_join(budget: Budget, owner: Any, args: tuple[Any, ...],
                kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    if len(args) != 1:
        return None
    items = list(args[0])  # a generator is drawn once, here, and joined from the list
    budget.check_size("joined text", _joined_size(budget, owner, items))
    return (items,)


def _check_translate(budget: Budget, owner: Any, args: tuple[Any, ...],
                     kwargs: Mapping[str, Any]) -> None:
    table = args[0] if args else None
    if not isinstance(owner, str) or not isinstance(table, (dict, list, tuple)):
        return
    values = table.values() if isinstance(table, dict) else table
    longest = max((len(v) for v in values if isinstance(v, str)), default=1)
    budget.check_size("translating", len(owner) * max(longest, 1))


def _check_extend(budget: Budget, owner: Any, args: tuple[Any, ...],
                  kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    if not isinstance(owner, list) or len(args) != 1:
        return None
    items = args[0] if isinstance(args[0], (list, tuple)) else list(args[0])
    if len(owner) + len(items) > MAX_ITEMS:
        raise TemplateBudgetError(f"a list of {len(owner) + len(items)} items is over the "
                                  f"{MAX_ITEMS} item limit")
    return (items,)


_MethodCheck = Callable[[Budget, Any, tuple[Any, ...], Mapping[str, Any]],
                        "tuple[Any, ...] | None"]
_METHOD_CHECKS: dict[str, _MethodCheck] = {
    "center": _check_pad, "ljust": _check_pad, "rjust": _check_pad, "zfill": _check_pad,
    "expandtabs": _check_expandtabs, "replace": _check_replace, "join": _check_join,
    "translate": _check_translate, "extend": _check_extend,
}


# ---------------------------------------------------------------- filters
# Each check takes the budget and the environment, then the filter's own
# arguments (without the context, eval context or environment some filters
# are passed first); it raises when the filter would make too much, and may
# return a replacement for the filter's input (a generator it had to draw to
# measure it).

def _f_center(budget: Budget, env: Any, value: Any, width: Any = 80) -> None:
    if isinstance(width, int) and width > budget.max_bytes:
        raise budget.too_big("padding", width)


def _f_indent(budget: Budget, env: Any, s: Any, width: Any = 4, first: Any = False,
              blank: Any = False) -> None:
    text = budget.text(s)
    step = len(width) if isinstance(width, str) else width
    if isinstance(step, int) and step > 0:
        budget.check_size("indenting", len(text) + (text.count("\n") + 1) * step)


def _f_format(budget: Budget, env: Any, value: Any, *args: Any, **kwargs: Any) -> None:
    if not (args and kwargs):
        check_percent(budget, budget.text(value), kwargs or args)


def _f_join(budget: Budget, env: Any, value: Any, d: Any = "",
            attribute: Any = None) -> list[Any]:
    items = list(value)
    measured = items
    if attribute is not None:
        measured = list(map(make_attrgetter(env, attribute), items))
    budget.check_size("joined text", _joined_size(budget, str(d), measured))
    return items


def _f_replace(budget: Budget, env: Any, s: Any, old: Any, new: Any,
               count: Any = None) -> None:
    size = _replaced_size(budget.text(s), str(old), str(new), -1 if count is None else count)
    if size is not None:
        budget.check_size("replacing", size)


def _f_batch(budget: Budget, env: Any, value: Any, linecount: Any, fill_with: Any = None) -> None:
    if isinstance(linecount, int) and linecount > MAX_ITEMS:
        raise TemplateBudgetError(f"batches of {linecount} items are over the "
                                  f"{MAX_ITEMS} item limit")


def _f_slice(budget: Budget, env: Any, value: Any, slices: Any, fill_with: Any = None) -> None:
    if isinstance(slices, int) and slices > MAX_ITEMS:
        raise TemplateBudgetError(f"{slices} slices are over the {MAX_ITEMS} item limit")


def _f_wordwrap(budget: Budget, env: Any, s: Any, width: Any = 79,
                break_long_words: Any = True, wrapstring: Any = None,
                break_on_hyphens: Any = True) -> None:
    text = budget.text(s)
    if len(text) > SLOW_TEXT_BYTES:
        raise TemplateBudgetError(f"wordwrap of {len(text)} characters is over the "
                                  f"{amount(SLOW_TEXT_BYTES)} limit")
    if not isinstance(width, int) or width <= 0:
        return  # textwrap refuses it
    wrap = str(wrapstring) if wrapstring is not None else env.newline_sequence
    breaks = (len(text) // width + text.count(" ") + text.count("\n") + text.count("-") + 1)
    budget.check_size("wrapping", len(text) + breaks * len(wrap))
    longest = max(map(len, text.split()), default=0)
    if break_long_words and longest * len(text) // width > _WRAP_WORK:
        raise TemplateBudgetError(f"wordwrap of a {longest}-character word at width {width} "
                                  "would take too long")


def _f_urlize(budget: Budget, env: Any, value: Any, trim_url_limit: Any = None,
              nofollow: Any = False, target: Any = None, rel: Any = None,
              extra_schemes: Any = None) -> None:
    text = budget.text(value)
    if len(text) > SLOW_TEXT_BYTES:
        raise TemplateBudgetError(f"urlize of {len(text)} characters is over the "
                                  f"{amount(SLOW_TEXT_BYTES)} limit")
    words = text.count(" ") + text.count("\n") + 1
    extra = len(str(target or "")) + len(str(rel or "")) + 64
    budget.check_size("urlize", 2 * len(text) + words * extra)


def _f_sum(budget: Budget, env: Any, iterable: Any, attribute: Any = None,
           start: Any = 0) -> list[Any] | None:
    if not isinstance(start, (str, bytes, list, tuple)):
        return None
    items = list(iterable)
    measured = items
    if attribute is not None:
        measured = list(map(make_attrgetter(env, attribute), items))
    size = len(start) + sum(len(v) for v in measured if isinstance(v, (str, bytes, list, tuple)))
    if isinstance(start, (str, bytes)):
        budget.check_size("a sum", size)
    elif size > MAX_ITEMS:
        raise TemplateBudgetError(f"a sum of {size} items is over the {MAX_ITEMS} item limit")
    return items


def _f_tojson(budget: Budget, env: Any, value: Any, indent: Any = None) -> None:
    step = len(indent) if isinstance(indent, str) else indent
    if isinstance(step, int) and step > budget.max_bytes:
        raise TemplateBudgetError(f"tojson indent {_short(step)} is over the "
                                  f"{amount(budget.max_bytes)} limit")
    budget.check_tree(value, "JSON that would print",
                      indent=step + 1 if isinstance(step, int) and step > 0 else 0)


_FilterCheck = Callable[..., Any]
_FILTER_CHECKS: dict[str, _FilterCheck] = {
    "center": _f_center, "indent": _f_indent, "format": _f_format, "join": _f_join,
    "replace": _f_replace, "batch": _f_batch, "slice": _f_slice, "wordwrap": _f_wordwrap,
    "urlize": _f_urlize, "sum": _f_sum, "tojson": _f_tojson,
}

# Filters that write out their whole input: a list or dict given to them is
# measured as it would print first.
_STRINGIFYING = frozenset({
    "capitalize", "e", "escape", "forceescape", "lower", "pprint", "safe", "string",
    "striptags", "title", "trim", "truncate", "upper", "urlencode", "wordcount", "xmlattr",
})

# Filters that make nothing bigger than their input and never write a list
# out: left as they are (what they hand back is measured where it is used).
_UNGUARDED = frozenset({
    "abs", "attr", "count", "d", "default", "dictsort", "filesizeformat", "first", "float",
    "groupby", "int", "items", "last", "length", "list", "map", "max", "min", "random",
    "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort", "unique",
})


def _guard_filter(budget: Budget, env: SandboxedEnvironment, name: str,
                  func: Callable[..., Any]) -> Callable[..., Any]:
    if name in _UNGUARDED:
        return func
    check = _FILTER_CHECKS.get(name)
    # the filtered value's index: after the context, eval context or
    # environment the filter asks for (every async-capable one asks for one)
    position = 1 if hasattr(func, "jinja_pass_arg") else 0
    result = budget.result

    if check is not None:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if perf_counter() > budget.deadline:
                raise budget.over_time()
            replacement = check(budget, env, *args[position:], **kwargs)
            if replacement is not None:
                args = (*args[:position], replacement, *args[position + 1:])
            return result(func(*args, **kwargs))
    elif name in _STRINGIFYING:
        # linear in their input, which is within the budget: no clock needed
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if len(args) > position and type(args[position]) in _CONTAINER_TYPES:
                budget.check_tree(args[position])
            value = func(*args, **kwargs)
            if type(value) is str:  # the common case, inline
                size = len(value)
                if size <= budget.max_bytes:
                    budget.made += size
                    if budget.made <= budget.max_made:
                        return value
            return result(value)
    else:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if perf_counter() > budget.deadline:
                raise budget.over_time()
            return result(func(*args, **kwargs))
    return update_wrapper(guarded, func)


def _guard_lipsum(budget: Budget) -> Callable[..., str]:
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if isinstance(n, int) and isinstance(max, int) and n * max * 12 > budget.max_bytes:
            raise budget.too_big(f"lipsum of {n} paragraphs of up to {max} words")
        return budget.result(generate_lorem_ipsum(n, html, min, max))
    return lipsum


# ---------------------------------------------------------------- environment

class BudgetedEnvironment(SandboxedEnvironment):
    """The sandbox, with every operator, call and filter that could make
    something huge checked first, and the clock checked at each of them."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, budget: Budget, **options: Any) -> None:
        super().__init__(**options)
        self.budget = budget
        self.filters = {name: _guard_filter(budget, self, name, func)
                        for name, func in self.filters.items()}
        self.filters[_LOOP] = _loop_guard(budget)
        self.filters[_OUTPUT] = _output_guard(budget)
        self.filters[_TEXT] = _text_guard(budget)
        self.filters[_CONCAT] = _concat_guard(budget)
        self.globals["lipsum"] = _guard_lipsum(budget)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = self.budget
        if perf_counter() > budget.deadline:
            raise budget.over_time()
        if operator == "*":
            _check_product(budget, left, right)
        elif operator == "+":
            _check_sum(budget, left, right)
        elif operator == "**":
            _check_power(left, right)
        elif isinstance(left, (str, bytes)):  # "%": printf-style formatting
            check_percent(budget, left, right)
        value = self.binop_table[operator](left, right)
        kind = type(value)
        if kind is int or kind is float:
            return value
        return budget.result(value)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        budget = __self.budget
        if perf_counter() > budget.deadline:
            raise budget.over_time()
        if type(__obj) is types.BuiltinMethodType:
            check = _METHOD_CHECKS.get(__obj.__name__)
            if check is not None and isinstance(__obj.__self__, (str, bytes, list)):
                replaced = check(budget, __obj.__self__, args, kwargs)
                if replaced is not None:
                    args = replaced
        # what SandboxedEnvironment.call does, without the extra frame
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        return budget.result(__context.call(__obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """The sandbox's str.format, with each field measured before it is made."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) or (
                value.__name__ not in ("format", "format_map")):
            return None
        f_self = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _BudgetEscapeFormatter(self, self.budget, escape=f_self.escape)
        else:
            formatter = _BudgetFormatter(self, self.budget)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(formatter.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)


def _check_product(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateBudgetError(f"{_short(left)} * {_short(right)} is over the "
                                      f"{MAX_INT_BITS}-bit number limit")
        return
    if isinstance(right, int) and isinstance(left, (str, bytes, list, tuple)):
        _check_repeat(budget, left, right)
    elif isinstance(left, int) and isinstance(right, (str, bytes, list, tuple)):
        _check_repeat(budget, right, left)


def _check_repeat(budget: Budget, seq: Any, times: int) -> None:
    if times <= 1 or not seq:
        return
    size = len(seq) * times
    if isinstance(seq, str):
        budget.check_size("string product", size)
    elif isinstance(seq, bytes):
        if size > budget.max_bytes:
            raise TemplateBudgetError(f"bytes product of {size} bytes is over the "
                                      f"{amount(budget.max_bytes)} limit")
    else:
        if size > MAX_ITEMS:
            raise TemplateBudgetError(f"list product of {size} items is over the "
                                      f"{MAX_ITEMS} item limit")
        if budget.check_tree(seq) * times > budget.max_bytes:
            raise TemplateBudgetError(f"a list product that would print as over "
                                      f"{amount(budget.max_bytes)}")


def _check_sum(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
        budget.check_size("joined text", len(left) + len(right))
    elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
        if len(left) + len(right) > MAX_ITEMS:
            raise TemplateBudgetError(f"a list of {len(left) + len(right)} items is over the "
                                      f"{MAX_ITEMS} item limit")


def _check_power(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int) and right > 0:
        bits = left.bit_length()
        if bits > 1 and (bits - 1) * right > MAX_INT_BITS:
            raise TemplateBudgetError(f"{_short(left)} ** {_short(right)} is over the "
                                      f"{MAX_INT_BITS}-bit number limit")


def _loop_guard(budget: Budget) -> Callable[..., Any]:
    # The clock is read every 16th iteration: reading it costs about as much
    # as an empty iteration, and 16 iterations without a call take microseconds.
    @pass_context
    def loop(context: Context, iterable: Any) -> Any:
        for n, item in enumerate(iterable):
            if not n & 15 and perf_counter() > budget.deadline:
                raise budget.over_time()
            yield item
    return loop


def _output_guard(budget: Budget) -> Callable[..., Any]:
    """What one `Output` node writes (its text and expressions, as a tuple):
    counted against the output limit wherever it goes, even into a macro's
    or a `{% set %}` block's buffer."""
    text_of = budget.text

    # pass_context keeps the compiler from folding it into a constant. No
    # clock here: an output runs once per loop iteration or call, which check it.
    @pass_context
    def output(context: Context, parts: tuple[Any, ...]) -> str:
        text = "".join([part if type(part) is str else text_of(part) for part in parts])
        budget.output += len(text)
        if budget.output > budget.max_bytes:
            raise TemplateBudgetError(f"output over {amount(budget.max_bytes)}")
        return text
    return output


def _text_guard(budget: Budget) -> Callable[[Any], str]:
    """An expression written out where the render counts what it yields:
    only lists and dicts are measured before they are written."""
    text_of = budget.text

    def text(value: Any) -> str:
        return value if type(value) is str else text_of(value)
    return text


def _concat_guard(budget: Budget) -> Callable[..., str]:
    def concat(parts: tuple[Any, ...]) -> str:
        texts = [part if type(part) is str else budget.text(part) for part in parts]
        budget.check_size("joined text", sum(map(len, texts)))
        return budget.result("".join(texts))
    return concat


# ---------------------------------------------------------------- compiling

# Templates made only of these do work in proportion to their length (and
# their inputs' size): no loops, calls, filters or repetition.
_PLAIN_NODES = frozenset({
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr,
    nodes.Getitem, nodes.Slice, nodes.If, nodes.CondExpr, nodes.Compare, nodes.Operand,
    nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos, nodes.Concat, nodes.Sub, nodes.Div,
    nodes.FloorDiv, nodes.Test, nodes.Keyword,
})


def needs_budget(tree: nodes.Node) -> bool:
    """Can this template do more work than its length says (loop, call,
    filter, repeat, assign)? Then it compiles with the guards."""
    for node in (tree, *tree.find_all(nodes.Node)):
        kind = type(node)
        if kind in _PLAIN_NODES:
            continue
        # `iter + 1`: a number plus a number, never a sequence growing
        if kind is nodes.Add and any(isinstance(side, nodes.Const) and type(side.value) in (int, float)
                                     for side in (node.left, node.right)):
            continue
        return True
    return False


def _guard(name: str, node: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Instrument(NodeTransformer):
    """Routes for-loops, outputs and `~` through the budget's guards, and
    folds guarded operators on constants (`'x' * 80`) that are within the
    budget, as the compiler would if they were not guarded.

    What the template yields is counted by the render as it streams; output
    that goes into a buffer first (a macro, a call or filter block, a
    `{% set %}` block, a recursive loop) is counted by a guard as it is made."""

    def __init__(self, environment: BudgetedEnvironment) -> None:
        self.environment = environment
        self.buffered = 0

    def _buffering(self, node: nodes.Node) -> nodes.Node:
        self.buffered += 1
        try:
            self.generic_visit(node)
        finally:
            self.buffered -= 1
        return node

    visit_Macro = visit_CallBlock = visit_FilterBlock = visit_AssignBlock = _buffering

    def _fold(self, node: nodes.BinExpr) -> nodes.Expr:
        self.generic_visit(node)
        left, right = node.left, node.right
        if isinstance(left, nodes.Const) and isinstance(right, nodes.Const):
            try:
                value = self.environment.call_binop(None, node.operator,  # type: ignore[arg-type]
                                                    left.value, right.value)
            except Exception:  # noqa: BLE001 - left to fail when rendered (or tried)
                return node
            if has_safe_repr(value):
                return nodes.Const(value, lineno=node.lineno)
        return node

    visit_Mul = visit_Pow = visit_Mod = visit_Add = _fold

    def visit_For(self, node: nodes.For) -> nodes.For:
        if node.recursive:
            self._buffering(node)
        else:
            self.generic_visit(node)
        node.iter = _guard(_LOOP, node.iter)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        if self.buffered:
            parts = [nodes.Const(child.data, lineno=child.lineno)
                     if isinstance(child, nodes.TemplateData) else child for child in node.nodes]
            node.nodes = [_guard(_OUTPUT, nodes.Tuple(parts, "load", lineno=node.lineno))]
        else:
            node.nodes = [child if isinstance(child, (nodes.TemplateData, nodes.Const))
                          else _guard(_TEXT, child) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _guard(_CONCAT, nodes.Tuple(node.nodes, "load", lineno=node.lineno))


def instrument(tree: nodes.Node, environment: BudgetedEnvironment) -> nodes.Node:
    """The same template with its loops, outputs and `~` guarded."""
    guarded = _Instrument(environment).visit(tree)
    guarded.set_environment(environment)
    return guarded


def check_value(budget: Budget, value: Any) -> Any:
    """A value a budgeted lone expression made: measured as it would be sent."""
    kind = type(value)
    if kind is str or kind is bytes or kind is Markup:
        if len(value) > budget.max_bytes:
            raise budget.too_big("a value", len(value))
    elif kind in _CONTAINER_TYPES:
        budget.check_tree(value)
    return value


def is_container(value: Any) -> bool:
    return type(value) in _CONTAINER_TYPES
