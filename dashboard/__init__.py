"""Plotly Dash dashboard over the analytics core. Imports analytics, never the reverse."""
