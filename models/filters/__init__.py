"""Filters over ranked lists: the item catalogue and the business rules (see :mod:`models.filters.rules`)."""
