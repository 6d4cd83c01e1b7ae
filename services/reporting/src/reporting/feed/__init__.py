"""The change feed and its webhooks (CONTRACT §8): every change of the four domain topics, in order,
with the entity's state before it and the fields it changed, for reusers that stay in sync."""
