"""The server-rendered dashboard: page routes, Jinja2 templates and static files, served by the API process."""
