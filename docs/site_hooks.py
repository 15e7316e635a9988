"""MkDocs hook: expand ``<!-- generated: NAME -->`` lines from the code (encompass_core.docgen)."""

from encompass_core import docgen


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 - MkDocs' hook signature
    return docgen.expand(markdown)
