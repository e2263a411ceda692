"""`leaderboard-ops`: the operator's command line (dead-letter queue, manual refresh, cache inspection)."""
