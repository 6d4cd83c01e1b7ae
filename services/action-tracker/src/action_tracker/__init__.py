"""The action-tracker service: the territories' action plans."""
