"""Load generation: the C engine (`_engine.c`) and its Python driver, latency histograms, the
per-response assertions it checks, and the load settings; used by the `load` and `chaos` kinds."""
