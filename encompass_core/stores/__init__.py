"""Metadata store backends behind one protocol (:mod:`.protocol`); see ``encompass_core.store``."""
