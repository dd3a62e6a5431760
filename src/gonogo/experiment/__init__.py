"""The parts of an experiment that several check kinds share: a steady-state hypothesis and its
probes, faults applied and removed, background traffic from the load engine, and integrity writes
read back afterwards. The chaos check runs them as an experiment; the observability check watches
the health and metrics endpoints under the same faults; the operation check runs the plan's
deploy and restore commands under the same traffic and integrity writes."""
