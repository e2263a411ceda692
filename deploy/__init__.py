"""Building and shipping the functions: Lambda artifacts (`python -m deploy.package`) and container images."""
