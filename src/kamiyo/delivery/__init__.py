"""Delivery: events → matching → durable queue rows → signed sends with retries (webhooks, chat, e-mail)."""
