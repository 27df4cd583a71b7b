"""Lingju's common kernel: settings, database, events, auth, errors, crypto, observability."""
