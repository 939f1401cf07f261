"""The edge to Prometheus: reads a workload's memory history for the investigation stage (RB-010 Step 3)."""
