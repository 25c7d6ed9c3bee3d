"""Griffe extension: render rxstargate's docstrings (Google style, reST inline markup) as Markdown.

The docstrings follow Google's style as Napoleon reads it: ``Example:`` heads a section of
doctests, and inline markup is reStructuredText (``:class:`Stream```, ````code````, ``text::``).
Griffe reads ``Examples:`` only and mkdocstrings renders Markdown, so each docstring is rewritten
here before it is parsed; the source stays as it is.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

#: ``Example:`` alone on its line is Napoleon's alias of ``Examples:``.
_EXAMPLE_SECTION = re.compile(r"^([ \t]*)Example:[ \t]*$", re.MULTILINE)
#: ``:class:`rxstargate.Stream``` and the like: the name as code, without its role.
_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|exc|data|obj|const):`~?([^`]+)`")
#: A paragraph ending in ``::`` introduces a literal block in reST; one colon reads right, and a
#: ``::`` alone on its line goes.
_LITERAL_INTRO = re.compile(r"(\S)::$", re.MULTILINE)
_LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*\n", re.MULTILINE)


def markdown_docstring(text: str) -> str:
    """Return ``text`` with Napoleon's section alias and reST inline markup made Markdown."""
    text = _EXAMPLE_SECTION.sub(r"\1Examples:", text)
    text = _ROLE.sub(r"`\1`", text)
    text = _LITERAL_ALONE.sub("", text)
    return _LITERAL_INTRO.sub(r"\1:", text)


class ReSTInlineMarkup(Extension):
    """Rewrites each object's docstring with :func:`markdown_docstring` before it is parsed."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
