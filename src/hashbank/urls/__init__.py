"""urls: see DESIGN.md."""
