"""Report rendering (Jinja2 templates for HTML/Markdown)."""
