"""The application: settings, credentials, store, approvals, policy, wiring and CLI."""
