"""The demo programme of the Territoires d'industrie platform (``make demo``): generator and loader."""
