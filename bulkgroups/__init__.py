"""bulkgroups."""
