"""Kamiyo's vocabulary: canonical chains and categories, how sources' words are normalised to them, protocol
keys and the curated aliases and corrections. A leaf: sources and ingest both use it, it uses neither."""
