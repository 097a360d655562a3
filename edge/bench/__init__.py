"""`edge bench`: handshake throughput of the edge, side by side with baselines in one run."""
