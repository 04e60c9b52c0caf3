"""Head-to-head comparisons of search strategies (lossgen compare)."""
