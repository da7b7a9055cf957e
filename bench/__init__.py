"""The benchmark and regression harness: throughput, budgeted training and their gates."""
