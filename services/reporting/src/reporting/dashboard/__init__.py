"""The programme's dashboard (``/dashboard``) and its generated Bilan (``/v1/reports/bilan``), built on
the public API only: every figure a page shows is one anyone can fetch with the same query."""
