"""Shared fixtures. Real components only: SQLite files, aiosmtpd and HTTP servers on loopback."""

pytest_plugins = ["tests.support.smtp", "tests.support.http"]
