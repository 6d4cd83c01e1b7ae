"""The territory registry: reference regions and départements, and the labelled territories."""
