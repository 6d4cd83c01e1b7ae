"""What the five services of the Territoires d'industrie platform share, written once."""
