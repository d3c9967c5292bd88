"""Feedback on a change: gate it against the last main build, report it on the PR."""
