"""Sharing experiments: push, pull and ls-remote of the refs, their artifacts, checkout."""
