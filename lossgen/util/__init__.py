"""Helpers with no lossgen imports, used by every layer that writes files (atomic writes)."""
