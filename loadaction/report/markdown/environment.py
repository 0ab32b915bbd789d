"""The Jinja environment the Markdown report renders in: the bundled
template, or the user's own, in Jinja's sandbox (a user may supply the
template), with `md_escape` as a filter.

A user template may reuse the bundled one: `{% extends "loadaction/report.md.j2" %}`
and override any of its blocks (headline, budgets, chaos, scenarios, checks,
custom_metrics, charts, scenario_details, errors, notices, truncation, footer).
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from loadaction.errors import PlanError, Source
from loadaction.report.markdown.escape import md_escape
from loadaction.report.markdown.fit import Context, Renderer

TEMPLATE_NAME = "report.md.j2"


def renderer(template: Path | None) -> Renderer:
    """Render with the bundled template, or the user's `template` file.
    Mistakes in a user template are the user's to fix, so they come back as
    PlanError naming the file; the bundled template's would be our bug and
    propagate as such."""
    if template is None:
        return _environment(_bundled_loader()).get_template(TEMPLATE_NAME).render
    env = _environment(
        ChoiceLoader(
            [FileSystemLoader(template.parent), PrefixLoader({"loadaction": _bundled_loader()})]
        )
    )

    def render(context: Context) -> str:
        # Inheritance and includes resolve while rendering, so their errors surface here too.
        try:
            return env.get_template(template.name).render(context)
        except TemplateSyntaxError as exc:
            raise PlanError(
                f"invalid template: {exc.message}",
                Source(exc.filename or str(template), exc.lineno),
            ) from None
        except TemplateNotFound as exc:
            raise PlanError(f"{template}: template not found: {exc.message}") from None
        except (UndefinedError, SecurityError) as exc:
            raise PlanError(f"{template}: {exc}") from None

    return render


def _bundled_loader() -> BaseLoader:
    return PackageLoader("loadaction.report", "templates")


def _environment(loader: BaseLoader) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=loader,
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_escape"] = md_escape
    return env
