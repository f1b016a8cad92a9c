"""User-facing management of outgoing webhook endpoints (`/api/v1/user-webhooks`)."""
