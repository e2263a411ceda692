"""The local stack: real engines from wheels, the Lambda handlers driven as AWS drives them (`make dev`)."""
