"""Frozen editions of the Bilan (issue « trust in the figures »): an edition keeps, byte for byte, the
indicators document, the HTML and the PDF of a scope's Bilan as of an instant, the high-water mark of
every source when it was frozen and the entity versions it was computed over; sign-offs make it
final; restatements list the figures that later, back-dated writes changed.

A subpackage with the service's layout (tables, schemas, domain, repository, service, api): its tables
carry no ``generation``, so a rebuild of the projections never touches them.
"""
