"""Errors of the broker and its topics that the CLI reports as one line, kept apart from Kafka's
client so that commands without Kafka (``replay``, ``validate``) do not load it."""

from __future__ import annotations


class TopicError(Exception):
    """Kafka out of reach, or topics in a shape the worker cannot use: one line for the user."""
