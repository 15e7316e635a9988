"""Hook implementations of the template plugin: one observer of image events, as an example."""

from __future__ import annotations

import logging

from encompass_core import hookimpl

log = logging.getLogger(__name__)


@hookimpl
def encompass_image_event(event):
    """Log every state change (replace with what your integration needs)."""
    log.info("%s: %s -> %s (%s)", event.image, event.from_state, event.to_state, event.message)
