"""Live stream of new exploits over Server-Sent Events (`GET /api/v1/stream`)."""
