"""Benchmarks of oom-responder: ingest, reaction time, alert storm, memory and start-up (see README.md)."""
