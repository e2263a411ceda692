"""Code both Lambda functions share: configuration, logging, the cache and its snapshot format, the lock,
the refresh queue and message, the ranking sources, and metrics."""
