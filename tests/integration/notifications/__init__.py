"""Notification tests on the real control plane."""
