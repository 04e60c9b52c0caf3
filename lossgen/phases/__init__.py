"""The three phases of the pipeline: search, validation check, effectiveness test."""
