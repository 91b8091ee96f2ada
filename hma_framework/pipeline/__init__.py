"""RQ jobs and the helpers that enqueue them. Jobs take ids, never objects."""
