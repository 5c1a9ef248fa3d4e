"""Charts rendered to image files (matplotlib, headless)."""
