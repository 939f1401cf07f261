"""Data only: Alertmanager payloads, normalized alerts, decisions, ledgers, settings. No I/O here."""
