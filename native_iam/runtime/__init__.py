"""What both roles need at run time, written once: environment reading (env), logging (logs),
listeners and the metrics server (listen), the multi-worker supervisor (workers) and gRPC health
(health). Imports neither role."""
