"""Device Intelligence Model Ops core library: telemetry, training, registry."""
