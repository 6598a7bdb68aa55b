"""Differential test of the discrepancy rules: random worlds, a reference evaluation, a fast harness."""
