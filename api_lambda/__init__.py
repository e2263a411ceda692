"""The API function: GET /leaderboard served from the Valkey snapshot, stale-while-revalidate."""
