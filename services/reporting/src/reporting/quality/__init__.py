"""Data quality per territory (issue « trust in the figures »): ``GET /v1/quality`` and ``ti quality``,
computed over the same entity states as the indicators — the current ones, or those as of an
instant — so that ``as_of`` works as it does for the indicators. A subpackage with the service's
layout (domain, schemas, repository, service, api, cli); it writes nothing.
"""
