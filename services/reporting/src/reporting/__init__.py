"""The reporting service: projections of the domain streams and materialised indicators."""
