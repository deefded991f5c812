"""The cycle engine: selection, deadlines, streaming aggregation and server strategies."""
