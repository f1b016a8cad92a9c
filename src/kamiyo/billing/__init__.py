"""Stripe billing: checkout, customer portal, incoming webhooks and subscription → tier sync."""
