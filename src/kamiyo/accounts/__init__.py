"""Users, sessions, API keys, authentication dependencies and rate limits."""
