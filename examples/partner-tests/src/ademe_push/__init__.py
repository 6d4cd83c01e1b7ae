"""ADEME's push of its Fonds vert decisions to the Territoires d'industrie platform."""
