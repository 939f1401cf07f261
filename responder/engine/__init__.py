"""Runs the pipeline: queueing, processing, acting, verifying, notifying. Glue between logic and the edges."""
