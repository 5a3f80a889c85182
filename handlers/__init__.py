"""Slack at the edge: listeners, parsing and Block Kit messages."""
