"""Which task a human should see next: uncertainty strategies, diversity clusters, and the sync that
writes the order back to Label Studio."""
