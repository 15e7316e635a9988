"""The editions of the driver contract this core speaks, in a module of its own: the plugin host
and ``encompass plugins`` check a plugin's edition without importing the contract itself
(:mod:`encompass_core.contracts`, which re-exports both, brings the model and its classes)."""

from __future__ import annotations

#: The edition of the driver contract this core speaks. A plugin declares the edition it was
#: written for (``CONTRACT_EDITION = 2`` in its entry point's module); the plugin host refuses one
#: this core does not speak (:mod:`encompass_core.provenance`).
CONTRACT_EDITION = 2
#: The editions whose plugins this core loads.
SUPPORTED_EDITIONS = (2,)
