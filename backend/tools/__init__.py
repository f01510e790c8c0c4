"""Tools around the product, never on its path: simulation, benchmarks, the report, a local Label
Studio for development."""
