"""Stripe billing: checkout, customer portal, incoming Stripe events (`stripe_events`), subscription → tier sync."""
