"""The site-catalog service: the industrial sites (sites clés en main) of the programme."""
