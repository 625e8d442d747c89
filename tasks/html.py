"""HTML pages from Jinja2 templates kept beside each stage (`tasks/<stage>/templates/`), escaped by default.

Every value that reaches a page may come from an input table, so autoescaping is on for every template.
"""

from __future__ import annotations

import functools

import jinja2


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(package: str, template: str, **context: object) -> str:
    """Render `template` from `<package>/templates/` with `context`; a missing variable is an error, not a blank."""
    return _environment(package).get_template(template).render(**context)
