"""Services the hub runs next to itself: the usage dashboard."""
