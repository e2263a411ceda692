"""The refresh worker: SQS-triggered, locked, retried, fenced rewrite of the leaderboard snapshot."""
