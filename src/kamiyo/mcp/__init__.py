"""The Model Context Protocol server (`kamiyo mcp`): the public read API as tools for AI assistants."""
