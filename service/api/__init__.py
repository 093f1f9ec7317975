"""The HTTP API under /v1: routers, schemas and dependencies."""
