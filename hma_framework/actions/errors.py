"""What can go wrong managing rules, handlers and deliveries, by what the caller can do."""

from __future__ import annotations


class InvalidActionInput(ValueError):
    """Malformed input (400): the message names the field and never quotes a secret."""


class ActionNotFound(LookupError):
    """No such rule, handler or delivery (404)."""


class ActionConflict(Exception):
    """The request clashes with what is stored (409): a duplicate name, a handler in use."""
