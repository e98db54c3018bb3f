"""What exists to demonstrate, benchmark and test omsbench: private servers, sample data, workloads, benches."""
