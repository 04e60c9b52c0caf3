"""Presentation of results: the run report (`run`), Phase III tables (`effectiveness`), export of
a found loss as a PyTorch module (`export`), and the shared markdown and plot helpers. Reports
read runs through `lossgen.runs`; no phase writes presentation files."""
