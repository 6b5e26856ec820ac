"""Alerting: rules over stored series, the alert lifecycle, center-aware correlation, silences and
maintenance windows, and notifications (webhook, e-mail, Alertmanager)."""
