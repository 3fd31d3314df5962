"""Errors a user can act on: the CLI prints their message without a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a file, a flag, a manifest) with a message that says how to fix it."""
