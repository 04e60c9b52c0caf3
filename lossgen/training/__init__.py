"""Losses (named and program), metrics and the population trainer. Sits below `lossgen.models`:
the trainer drives any population through the `Population` protocol."""
