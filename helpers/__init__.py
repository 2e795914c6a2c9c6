"""Helpers shared by the course notebooks: env, data, plots, bench (and more as the course grows)."""
